/* Error codes shared by every libveil module. */
#ifndef VEIL_ERR_H
#define VEIL_ERR_H

/*
 * Every function that can fail returns 0 on success or one of these negative
 * values. The library never prints and never exits; callers turn a code into
 * text with veil_strerror().
 */
enum veil_err {
	VEIL_OK = 0,
	VEIL_ENOMEM = -1,    /* allocation failed */
	VEIL_ETRUNC = -2,    /* input ended before the format said it would */
	VEIL_EPROTO = -3,    /* input violates the wire format */
	VEIL_ECRYPTO = -4,   /* authentication or key agreement failed */
	VEIL_ELIMIT = -5,    /* a size or count exceeds its named maximum */
	VEIL_EIO = -6,       /* an operating-system or storage call failed */
	VEIL_EINVAL = -7,    /* the caller passed an invalid argument */
	VEIL_ENOTFOUND = -8, /* the requested item does not exist */
	VEIL_EEXIST = -9,    /* the item already exists */
	VEIL_ETIMEOUT = -10, /* a deadline passed */
	VEIL_ECLOSED = -11,  /* the peer closed the connection */
	VEIL_EAGAIN = -12,   /* try again later (rate limit, would block) */
	VEIL_EREPLAY = -13,  /* a nonce or token was seen before */
	VEIL_EAUTH = -14,    /* the peer refused our credentials */
	VEIL_EKEY = -15,     /* a public key differs from the pinned one */
	VEIL_ENOSPC = -16,   /* the disk (or a quota of the file system) is full */
	VEIL_ECORRUPT = -17, /* stored data failed an integrity check */
	VEIL_EQUOTA = -18,   /* one party's share of a shared limit is used up */
	VEIL_EPARTIAL = -19, /* some receivers did not get it; the others did */
	VEIL_EPASS = -20,    /* the passphrase does not open the profile */
	VEIL_ELOCKED = -21,  /* the profile has a passphrase and none was given */
	VEIL_EPLAIN = -22,   /* the profile is in the old plaintext format */
	VEIL_ECLOCK = -23,   /* this clock differs too much from the server's */
};

/* Returns a static, human-readable description of an error code. */
const char *veil_strerror(int err);

#endif
