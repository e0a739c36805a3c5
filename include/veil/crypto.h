/* Cryptography on libsodium: NaCl box and secretbox, the BLAKE2b KDF. */
#ifndef VEIL_CRYPTO_H
#define VEIL_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "veil/util.h"

#define VEIL_KEY_LEN 32   /* X25519 public/secret keys, shared keys, secretbox keys */
#define VEIL_NONCE_LEN 24 /* XSalsa20 nonce */
#define VEIL_MAC_LEN 16   /* Poly1305 tag */
#define VEIL_COOKIE_LEN 16

/* Initialises libsodium; returns 0 or VEIL_ECRYPTO. Call once per process. */
int veil_crypto_init(void) VEIL_WUR;

void veil_random(void *out, size_t n);
/* A random non-zero 64-bit value (zero is reserved in several formats). */
uint64_t veil_random_u64(void);

/* Creates an X25519 key pair. */
void veil_keypair(uint8_t pk[static VEIL_KEY_LEN], uint8_t sk[static VEIL_KEY_LEN]);
/* Derives the public key of a secret key. */
void veil_pubkey(uint8_t pk[static VEIL_KEY_LEN], const uint8_t sk[static VEIL_KEY_LEN]);
/*
 * The X25519 public key of sk, as crypto_scalarmult_base computes it, through
 * libsodium's table-driven Ed25519 fixed-base multiplication (a third of the
 * cost where libsodium's X25519 base multiplication is a full ladder); 0, or
 * VEIL_ECRYPTO as crypto_scalarmult_base fails. lib/crypto/basepoint.c.
 */
int veil_x25519_base(uint8_t pk[static VEIL_KEY_LEN], const uint8_t sk[static VEIL_KEY_LEN]);

/*
 * The X25519HSalsa20 shared secret (NaCl crypto_box_beforenm), precomputed
 * once per peer. Fails on a low-order public key.
 */
int veil_shared_key(uint8_t k[static VEIL_KEY_LEN], const uint8_t sk[static VEIL_KEY_LEN],
                    const uint8_t pk[static VEIL_KEY_LEN]) VEIL_WUR;

/*
 * Box with a precomputed key: out receives VEIL_MAC_LEN + n bytes (tag
 * first, NaCl "easy" layout). out may alias in.
 */
void veil_box_seal(uint8_t *out, const uint8_t *in, size_t n,
                   const uint8_t nonce[static VEIL_NONCE_LEN],
                   const uint8_t k[static VEIL_KEY_LEN]);
/* Opens n bytes (n >= VEIL_MAC_LEN) into n - VEIL_MAC_LEN bytes of out. */
int veil_box_open(uint8_t *out, const uint8_t *in, size_t n,
                  const uint8_t nonce[static VEIL_NONCE_LEN],
                  const uint8_t k[static VEIL_KEY_LEN]) VEIL_WUR;

/* Secretbox, same layout as the box functions. */
void veil_secretbox_seal(uint8_t *out, const uint8_t *in, size_t n,
                         const uint8_t nonce[static VEIL_NONCE_LEN],
                         const uint8_t k[static VEIL_KEY_LEN]);
int veil_secretbox_open(uint8_t *out, const uint8_t *in, size_t n,
                        const uint8_t nonce[static VEIL_NONCE_LEN],
                        const uint8_t k[static VEIL_KEY_LEN]) VEIL_WUR;

/*
 * The specification's key derivation: BLAKE2b with the given key, no input,
 * salt and personal zero-padded to 16 bytes each (at most 16 bytes), and an
 * output of outlen bytes (16..64).
 */
int veil_kdf(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen, const char *salt,
             size_t saltlen, const char *personal, size_t personallen) VEIL_WUR;

/* BLAKE2b-256 MAC keyed with key over in. */
void veil_blake2b_mac(uint8_t out[static 32], const uint8_t key[static 32], const uint8_t *in,
                      size_t n);

/* HMAC-SHA256. */
void veil_hmac_sha256(uint8_t out[static 32], const uint8_t *key, size_t keylen, const uint8_t *in,
                      size_t n);

/* Constant-time comparison; returns 0 if equal. */
int veil_memcmp(const void *a, const void *b, size_t n);

/*
 * Threema IDs: 8 characters of [A-Z0-9], or '*' followed by 7 such
 * characters for a gateway ID.
 */
#define VEIL_ID_LEN 8
int veil_id_valid(const uint8_t id[static VEIL_ID_LEN]);
/* Writes id as a NUL-terminated string (no validation). */
void veil_id_str(char out[static VEIL_ID_LEN + 1], const uint8_t id[static VEIL_ID_LEN]);
/* Validates a NUL-terminated string of exactly 8 characters. */
int veil_id_parse(uint8_t id[static VEIL_ID_LEN], const char *s) VEIL_WUR;

#endif
