/* Helpers shared by the files of lib/md (not part of the public API). */
#ifndef VEIL_MD_INT_H
#define VEIL_MD_INT_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "veil/md.h"

/* Random padding length for a protobuf padding field, 0..VEIL_MD_PAD_MAX. */
size_t veil_md_pad_len(void);
/* VEIL_MD_PAD_MAX zero bytes, the content of every padding field we write. */
extern const uint8_t veil_md_zeros[VEIL_MD_PAD_MAX];

/*
 * Appends a container header and reserves room for n more bytes, so an
 * encoder can pack straight into out->p + out->len. On failure out is
 * unchanged.
 */
int veil_md_container_begin(struct veil_buf *out, uint8_t type, size_t n) VEIL_WUR;
/* Appends the protobuf message m packed inside a container of the given type. */
int veil_md_pack_container(struct veil_buf *out, uint8_t type, const ProtobufCMessage *m) VEIL_WUR;
/*
 * Copies a protobuf bytes field of at most cap bytes to dst and its length
 * to *len; VEIL_ELIMIT (nothing copied) if it is longer.
 */
int veil_md_copy_bytes(uint8_t *dst, size_t *len, ProtobufCBinaryData f, size_t cap) VEIL_WUR;

#endif
