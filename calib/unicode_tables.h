/* unicode_tables.h — declarations of the generated Unicode tables (calib/unicode_tables.c, made by
 * tools/gen_unicode_tables.py): the character classes of the GPT-2 pre-tokenizer split and the data
 * of NFC normalization. Only tables; the lookups are in calib/tok_unicode.c. */
#ifndef KVQ_UNICODE_TABLES_H
#define KVQ_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

typedef struct { uint32_t lo, hi; } kvq_uni_range;               /* inclusive, sorted, disjoint */
typedef struct { uint32_t lo, hi; uint8_t ccc; } kvq_uni_ccc;    /* non-zero combining classes */
typedef struct { uint32_t cp, a, b; } kvq_uni_decomp;            /* cp -> a [b]; b == 0: single */
typedef struct { uint32_t a, b, cp; } kvq_uni_comp;              /* sorted by (a, b) */

extern const char kvq_unicode_version[];
extern const kvq_uni_range kvq_uni_letter[], kvq_uni_number[], kvq_uni_space[];
extern const size_t kvq_uni_letter_n, kvq_uni_number_n, kvq_uni_space_n;
extern const kvq_uni_ccc kvq_uni_ccc_tab[];
extern const size_t kvq_uni_ccc_tab_n;
extern const kvq_uni_decomp kvq_uni_decomp_tab[];   /* sorted by cp */
extern const size_t kvq_uni_decomp_tab_n;
extern const kvq_uni_comp kvq_uni_comp_tab[];
extern const size_t kvq_uni_comp_tab_n;

#endif
