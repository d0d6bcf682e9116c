/* tok_unicode.c — the Unicode the tokenizers need: UTF-8 decoding that never fails (stray bytes
 * become pseudo code points), the letter/number/space classes, NFC normalization, and two
 * pre-tokenizer splits written out by hand, GPT-2's
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * and Llama-3's / Qwen2's (they differ only in \p{N}{1,3} versus \p{N})
 *     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 *     \s*[\r\n]+|\s+(?!\S)|\s+
 * Tables come from calib/unicode_tables.c (generated). Not a regex engine. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "unicode_tables.h"

enum { STRAY = 0x110000 };   /* stray byte b decodes to STRAY + b */

size_t kvq_utf8_next(const char *str, size_t len, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) { n = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = STRAY + c; return 1; }
    if (len < n) { *cp = STRAY + c; return 1; }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = STRAY + c; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = STRAY + c; return 1; }
    *cp = v;
    return n;
}

size_t kvq_utf8_put(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp >= STRAY) { o[0] = (unsigned char)(cp - STRAY); return 1; }
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int in_ranges(const kvq_uni_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int kvq_uni_is_letter(uint32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(kvq_uni_letter, kvq_uni_letter_n, cp);
}
int kvq_uni_is_number(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(kvq_uni_number, kvq_uni_number_n, cp);
}
int kvq_uni_is_space(uint32_t cp) { return in_ranges(kvq_uni_space, kvq_uni_space_n, cp); }

/* ---- pre-tokenizer splits ---- */
enum { C_OTHER, C_LETTER, C_NUMBER, C_SPACE };

static int char_class(uint32_t cp) {
    if (kvq_uni_is_letter(cp)) return C_LETTER;
    if (kvq_uni_is_number(cp)) return C_NUMBER;
    if (kvq_uni_is_space(cp)) return C_SPACE;
    return C_OTHER;
}

/* Bytes of the longest run of characters of class k starting at s[0]. */
static size_t run_of(const char *s, size_t len, int k) {
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = kvq_utf8_next(s + i, len - i, &cp);
        if (char_class(cp) != k) break;
        i += n;
    }
    return i;
}

/* A whitespace run at s[0]: with newlines (\s*[\r\n]+) up to the end of its last \r or \n, else
 * \s+(?!\S) then \s+: the run, leaving its last char to a following non-space. */
static size_t space_run(const char *s, size_t len, int newlines) {
    size_t i = 0, last = 0, nl = 0;
    while (i < len) {
        uint32_t c;
        size_t n = kvq_utf8_next(s + i, len - i, &c);
        if (char_class(c) != C_SPACE) break;
        last = i;
        i += n;
        if (c == '\r' || c == '\n') nl = i;
    }
    if (newlines && nl) return nl;
    return i == len || last == 0 ? i : last;
}

size_t kvq_gpt2_split_next(const char *s, size_t len) {
    if (s[0] == '\'' && len >= 2) {                       /* 's 't 'm 'd 're 've 'll */
        char a = s[1], b = len >= 3 ? s[2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    uint32_t cp;
    size_t n0 = kvq_utf8_next(s, len, &cp);
    int k = char_class(cp);
    if (cp == ' ' && n0 < len) {                          /* " ?X+" with X the next char's class */
        uint32_t cp2;
        kvq_utf8_next(s + 1, len - 1, &cp2);
        int k2 = char_class(cp2);
        if (k2 != C_SPACE) return 1 + run_of(s + 1, len - 1, k2);
    }
    if (k != C_SPACE) return run_of(s, len, k);
    return space_run(s, len, 0);
}

/* Llama-3 / Qwen2: the contraction at s[0] under (?i:...) — ASCII case and U+017F (long s, which
 * case-folds to s) — in bytes, or 0. */
static size_t contraction_ci(const char *s, size_t len) {
    if (s[0] != '\'' || len < 2) return 0;
    if (len >= 3 && (unsigned char)s[1] == 0xC5 && (unsigned char)s[2] == 0xBF) return 3;   /* 'ſ */
    char a = (char)(s[1] | 0x20), b = len >= 3 ? (char)(s[2] | 0x20) : 0;  /* |0x20 maps only A-Z */
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

size_t kvq_llama3_split_next(const char *s, size_t len, int max_digits) {
    size_t n = contraction_ci(s, len);
    if (n) return n;
    uint32_t cp, cp2 = 0;
    size_t n0 = kvq_utf8_next(s, len, &cp);
    int k = char_class(cp), k2 = -1;
    if (n0 < len) {
        kvq_utf8_next(s + n0, len - n0, &cp2);
        k2 = char_class(cp2);
    }
    if (k == C_LETTER) return run_of(s, len, C_LETTER);      /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (k != C_NUMBER && cp != '\r' && cp != '\n' && k2 == C_LETTER)
        return n0 + run_of(s + n0, len - n0, C_LETTER);
    if (k == C_NUMBER) {                                     /* \p{N}{1,max_digits} */
        size_t i = 0;
        for (int d = 0; d < max_digits && i < len; d++) {
            size_t m = kvq_utf8_next(s + i, len - i, &cp);
            if (char_class(cp) != C_NUMBER) break;
            i += m;
        }
        return i;
    }
    if (k == C_OTHER || (cp == ' ' && k2 == C_OTHER)) {     /* ?[^\s\p{L}\p{N}]+[\r\n]* */
        size_t i = k == C_OTHER ? 0 : 1;
        i += run_of(s + i, len - i, C_OTHER);
        while (i < len && (s[i] == '\r' || s[i] == '\n')) i++;
        return i;
    }
    return space_run(s, len, 1);
}

/* ---- NFC ---- */
enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7, L_COUNT = 19,
       V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT, S_COUNT = L_COUNT * N_COUNT };

static uint8_t ccc_of(uint32_t cp) {
    size_t lo = 0, hi = kvq_uni_ccc_tab_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < kvq_uni_ccc_tab[mid].lo) hi = mid;
        else if (cp > kvq_uni_ccc_tab[mid].hi) lo = mid + 1;
        else return kvq_uni_ccc_tab[mid].ccc;
    }
    return 0;
}

static const kvq_uni_decomp *decomp_of(uint32_t cp) {
    size_t lo = 0, hi = kvq_uni_decomp_tab_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < kvq_uni_decomp_tab[mid].cp) hi = mid;
        else if (cp > kvq_uni_decomp_tab[mid].cp) lo = mid + 1;
        else return &kvq_uni_decomp_tab[mid];
    }
    return NULL;
}

static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    size_t lo = 0, hi = kvq_uni_comp_tab_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const kvq_uni_comp *c = &kvq_uni_comp_tab[mid];
        if (a < c->a || (a == c->a && b < c->b)) hi = mid;
        else if (a > c->a || b > c->b) lo = mid + 1;
        else return c->cp;
    }
    return 0;
}

/* Append the full canonical decomposition of cp (at most 4 levels deep in Unicode 14). */
static void decompose(uint32_t cp, uint32_t *out, size_t *n) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE;
        out[(*n)++] = L_BASE + s / N_COUNT;
        out[(*n)++] = V_BASE + (s % N_COUNT) / T_COUNT;
        if (s % T_COUNT) out[(*n)++] = T_BASE + s % T_COUNT;
        return;
    }
    const kvq_uni_decomp *d = cp < STRAY ? decomp_of(cp) : NULL;
    if (!d) { out[(*n)++] = cp; return; }
    decompose(d->a, out, n);
    if (d->b) decompose(d->b, out, n);
}

kvq_status kvq_uni_nfc(const char *s, size_t len, char **out, size_t *out_len) {
    *out = NULL;
    /* Bounds checked by tools/gen_unicode_tables.py for Unicode 14: a character's decomposition
     * has at most 2 code points per UTF-8 byte of it, and NFC at most 3 output bytes per input
     * byte; 4 and 3 leave room. */
    if (len > SIZE_MAX / (4 * sizeof(uint32_t)) - 4) return KVQ_ERR_OVERFLOW;
    uint32_t *cps = malloc((4 * len + 4) * sizeof *cps);
    char *o = malloc(len * 3 + 4);   /* NFC output never exceeds 3x the input bytes */
    if (!cps || !o) { free(cps); free(o); return KVQ_ERR_NOMEM; }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += kvq_utf8_next(s + i, len - i, &cp);
        decompose(cp, cps, &n);
    }
    /* canonical ordering: stable sort of each run of non-starters by class */
    for (size_t i = 1; i < n; i++) {
        uint8_t c = ccc_of(cps[i]);
        if (!c) continue;
        for (size_t j = i; j > 0 && ccc_of(cps[j - 1]) > c; j--) {
            uint32_t t = cps[j]; cps[j] = cps[j - 1]; cps[j - 1] = t;
        }
    }
    /* canonical composition */
    size_t w = 0;
    if (n) {
        size_t starter = 0;
        int last = ccc_of(cps[0]) ? 256 : 0;
        w = 1;
        for (size_t i = 1; i < n; i++) {
            uint32_t ch = cps[i];
            int cc = ccc_of(ch);
            uint32_t comp = cps[starter] < STRAY && ch < STRAY ? compose(cps[starter], ch) : 0;
            if (comp && (last < cc || last == 0)) {
                cps[starter] = comp;
                continue;
            }
            if (cc == 0) starter = w;
            last = cc;
            cps[w++] = ch;
        }
    }
    size_t ol = 0;
    for (size_t i = 0; i < w; i++) ol += kvq_utf8_put(cps[i], o + ol);
    free(cps);
    *out = o;
    *out_len = ol;
    return KVQ_OK;
}
