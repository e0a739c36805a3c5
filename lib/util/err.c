#include "veil/err.h"

const char *veil_strerror(int err)
{
	switch (err) {
	case VEIL_OK: return "success";
	case VEIL_ENOMEM: return "out of memory";
	case VEIL_ETRUNC: return "input truncated";
	case VEIL_EPROTO: return "protocol violation";
	case VEIL_ECRYPTO: return "decryption or authentication failed";
	case VEIL_ELIMIT: return "size limit exceeded";
	case VEIL_EIO: return "input/output error";
	case VEIL_EINVAL: return "invalid argument";
	case VEIL_ENOTFOUND: return "not found";
	case VEIL_EEXIST: return "already exists";
	case VEIL_ETIMEOUT: return "timed out";
	case VEIL_ECLOSED: return "connection closed";
	case VEIL_EAGAIN: return "try again later";
	case VEIL_EREPLAY: return "replayed nonce or token";
	case VEIL_EAUTH: return "authentication refused";
	case VEIL_EKEY: return "public key mismatch";
	case VEIL_ENOSPC: return "disk full";
	case VEIL_ECORRUPT: return "data corrupt";
	case VEIL_EQUOTA: return "share of the limit used up";
	case VEIL_EPARTIAL: return "not every receiver got it";
	case VEIL_EPASS: return "wrong passphrase";
	case VEIL_ELOCKED: return "the profile needs its passphrase";
	case VEIL_EPLAIN: return "the profile is in the old plaintext format";
	case VEIL_ECLOCK: return "this clock differs too much from the server's";
	default: return "unknown error";
	}
}
