/* pgtype.h - a value's text checked as PostgreSQL's input function for its
 * type would check it, so that a write PostgreSQL would refuse for its type
 * alone is refused at write() rather than acknowledged and then dead.
 *
 * Each checker takes the text of a JSON string (or of a JSON number for the
 * numeric ones) and returns true when PostgreSQL 15 takes it. They accept
 * everything PostgreSQL prints for the type (row_to_json, DateStyle ISO,
 * IntervalStyle postgres, lc_monetary C) and the common ISO input forms; a
 * few rarer input spellings PostgreSQL would also take are refused (named
 * zones, abbreviated cidr, SQL-standard intervals, money in other locales):
 * refusing at write() is safe, a dead write is not. Pure functions, no state.
 */
#ifndef SHARDED_PGTYPE_H
#define SHARDED_PGTYPE_H

#include <stdbool.h>
#include <stdint.h>

/* date: YYYY-MM-DD (a real calendar day, year from 1) with optional " BC",
 * within 4714-11-24 BC .. 5874897-12-31; infinity, -infinity. */
bool pgt_date(const char *s);

/* time: H:MM[:SS[.frac]], up to 24:00:00; a zone is allowed and ignored. */
bool pgt_time(const char *s);

/* timestamp and timestamptz: a date, then T or a space and a time, an
 * optional zone, optional " BC", within 4714-11-24 BC .. 294276-12-31;
 * infinity, -infinity. */
bool pgt_timestamp(const char *s);

/* numeric: decimal text (exponent allowed, no blanks), NaN, [+-]Infinity, [+-]inf; for
 * a typmod (numeric(p,s)) the value rounded to s decimals must fit p digits
 * and infinities are refused; without, at most 131072 digits before the
 * point and 16383 after. */
bool pgt_numeric(const char *s, int32_t typmod);

/* float4/float8 as a string: NaN, [+-]Infinity, [+-]inf (what a JSON number
 * cannot say; a finite value must be a JSON number). */
bool pgt_float_text(const char *s);

/* char(n)/varchar(n) (typmod n + 4, -1 for none): at most n characters,
 * or more where every character past the n-th is a space. */
bool pgt_chars(const char *s, int32_t typmod);

/* inet (and cidr when cidr: no bits set right of the mask). */
bool pgt_inet(const char *s, bool cidr);

/* macaddr: six bytes in one of PostgreSQL's seven spellings. */
bool pgt_macaddr(const char *s);

/* interval: PostgreSQL's form ("1 year 2 mons -3 days 04:05:06.5", "@ 1
 * day ago") or ISO 8601's ("P1Y2M3DT4H5M6S"). */
bool pgt_interval(const char *s);

/* bytea: \x and pairs of hex digits, or the escape form. */
bool pgt_bytea(const char *s);

/* money as text: [-(]$digits[,digits][.digits][)], within 64 bits of cents. */
bool pgt_money(const char *s);

/* money as a JSON number's value. */
bool pgt_money_number(double v);

/* bit(n) (exactly n bits) or bit varying(n) (at most; typmod -1: any). */
bool pgt_bit(const char *s, int32_t typmod, bool varying);

/* A built-in range type named typname (int4range, ... tstzrange): "empty"
 * or [lower,upper) with each bound of the subtype, lower <= upper for the
 * integer ranges. */
bool pgt_range(const char *s, const char *typname);

/* tsvector: lexemes, quoted or bare, each with optional positions 1..16383
 * and weights A-D, e.g. 'a' 'cat':3 'fat':2A,4. */
bool pgt_tsvector(const char *s);

/* uuid: 32 hex digits, any case, dashes after groups of four (braces,
 * which PostgreSQL also takes, are refused). */
bool pgt_uuid(const char *s);

#endif
