/* keyname.h - record keys as file names: the one reversible encoding.
 *
 * Every path that turns a key into a file name or back (lookup, readdir,
 * create, rename, change notices, loaders, the sharded tool) goes through
 * here, so one row has exactly one file name and every name decodes to at
 * most one key.
 *
 * One key part is written as itself, except that '/', ',', '%', the control
 * bytes 0x01-0x1f and 0x7f, and a leading '.' become %XX (upper-case hex),
 * and an empty part is written "%00" (no key holds a NUL byte). The parts of
 * a composite key are encoded one by one and joined by ','. A record's file
 * name is the encoded key followed by ".json".
 *
 * A decoder accepts only the encoder's own output: "a%2fb", "%41" or a raw
 * control byte is not the name of any key, so no key has a second name.
 *
 * A key whose name would pass NAME_MAX (255 bytes with ".json") gets a long
 * form: the encoded key cut at 232 bytes (never inside a %XX or a UTF-8
 * character), "%~", 16 hex digits of the key's 64-bit FNV-1a hash, ".json".
 * Such a name can be listed and opened, but names no key by itself: the
 * caller finds the key among the records it holds (keyname_from_key equal).
 */
#ifndef SHARDED_KEYNAME_H
#define SHARDED_KEYNAME_H

#include <stdbool.h>
#include <stddef.h>

#define KEYNAME_SUFFIX ".json"
#define KEYNAME_MAX 255		/* longest file name, suffix included (NAME_MAX) */
#define KEYNAME_KEY_MAX 2048	/* longest key the mount lists; longer ones are skipped */

/* Encode part (len bytes) into out (outlen bytes, NUL-terminated when it
 * fits). Returns the encoded length, as snprintf does: >= outlen when cut. */
size_t keyname_encode_part(const char *part, size_t len, char *out, size_t outlen);

/* Decode enc (len bytes, no ',') into out (outlen bytes, NUL-terminated).
 * *outn gets the part's length. False when enc is not the encoding of any
 * part (not canonical) or the part does not fit. */
bool keyname_decode_part(const char *enc, size_t len, char *out, size_t outlen, size_t *outn);

/* Encode n parts joined by ','. Return as keyname_encode_part. */
size_t keyname_encode_list(const char *const *parts, const size_t *lens, size_t n, char *out,
			   size_t outlen);

/* Decode a ','-joined list: out gets the parts one after the other, each
 * followed by a NUL; *nparts their count. False as keyname_decode_part. */
bool keyname_decode_list(const char *enc, size_t len, char *out, size_t outlen, size_t *nparts);

enum keyname_kind {
	KEYNAME_NONE,	/* not a record name (hidden, or no ".json"): a scratch file */
	KEYNAME_KEY,	/* the name of one key, now in pk */
	KEYNAME_LONG,	/* the long form: look the key up among the records */
	KEYNAME_BAD	/* ends in ".json" but is not the name of any key */
};

/* Which key does file name name? pk (pklen bytes) gets the key for KEYNAME_KEY. */
enum keyname_kind keyname_to_key(const char *name, char *pk, size_t pklen);

/* The file name of key pk (one part) into name, which holds KEYNAME_MAX + 1
 * bytes; the long form when the plain one is too long. True when the name is
 * the plain one (a key that can be written through its name). */
bool keyname_from_key(const char *pk, char name[KEYNAME_MAX + 1]);

/* The same for a key of several parts, pk being their keyname_encode_list()
 * (already encoded: written as it is, or in the long form). */
bool keyname_from_list(const char *pk, char name[KEYNAME_MAX + 1]);

#endif
