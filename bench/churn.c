/* churn.c — models compute programs that build and drop small objects at a
 * furious rate (the role cfrac and espresso play in allocator benchmarks):
 * big-number arithmetic in which every number is a malloc'd header plus a
 * malloc'd limb array, and every operation returns a fresh number while its
 * operands are freed. Lifetimes are a few operations long; sizes are 16 bytes
 * (headers) up to a few hundred bytes (limb arrays), plus a realloc-grown
 * decimal string per result.
 *
 * usage: churn ROUNDS
 * Round r computes Fibonacci number F(n), n = 200..999, twice — by n
 * additions and by fast doubling (multiplications) — and requires both to be
 * equal, checks Cassini's identity F(n-1)F(n+1) - F(n)^2 = (-1)^n, and
 * converts F(n) to decimal by repeated division. F(100) is also checked
 * against its known decimal value. Any mismatch exits 1.
 * ops = malloc/realloc calls made. */
#include "bench.h"

/* malloc/realloc calls made, for the result line's ops= (single thread). */
static uint64_t allocation_calls;

/* A non-negative integer: len limbs, least significant first, no leading
 * zero limbs (zero has len 0). */
typedef struct {
    uint32_t len;
    uint32_t *limbs;
} big;

static big *big_alloc(uint32_t len) {
    big *number = bench_nonnull(malloc(sizeof *number), sizeof *number);
    number->len = len;
    /* malloc(0) is legal but keep the stream free of it: +1 limb. */
    number->limbs =
        bench_nonnull(malloc((len + 1) * sizeof(uint32_t)), (len + 1) * sizeof(uint32_t));
    allocation_calls += 2;
    return number;
}

static void big_free(big *number) {
    free(number->limbs);
    free(number);
}

static void big_trim(big *number) {
    while (number->len > 0 && number->limbs[number->len - 1] == 0) number->len--;
}

static big *big_from(uint32_t value) {
    big *number = big_alloc(1);
    number->limbs[0] = value;
    big_trim(number);
    return number;
}

static int big_cmp(const big *a, const big *b) {
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    for (uint32_t i = a->len; i-- > 0;)
        if (a->limbs[i] != b->limbs[i]) return a->limbs[i] < b->limbs[i] ? -1 : 1;
    return 0;
}

static big *big_add(const big *a, const big *b) {
    if (a->len < b->len) {
        const big *t = a;
        a = b;
        b = t;
    }
    big *sum = big_alloc(a->len + 1);
    uint64_t carry = 0;
    for (uint32_t i = 0; i < a->len; i++) {
        carry += (uint64_t)a->limbs[i] + (i < b->len ? b->limbs[i] : 0);
        sum->limbs[i] = (uint32_t)carry;
        carry >>= 32;
    }
    sum->limbs[a->len] = (uint32_t)carry;
    big_trim(sum);
    return sum;
}

/* a - b, requires a >= b. */
static big *big_sub(const big *a, const big *b) {
    BENCH_CHECK(big_cmp(a, b) >= 0, "negative difference");
    big *diff = big_alloc(a->len);
    int64_t borrow = 0;
    for (uint32_t i = 0; i < a->len; i++) {
        int64_t d = (int64_t)a->limbs[i] - (i < b->len ? b->limbs[i] : 0) - borrow;
        borrow = d < 0;
        diff->limbs[i] = (uint32_t)(d + (borrow << 32));
    }
    big_trim(diff);
    return diff;
}

static big *big_mul(const big *a, const big *b) {
    big *product = big_alloc(a->len + b->len);
    memset(product->limbs, 0, (a->len + b->len) * sizeof(uint32_t));
    for (uint32_t i = 0; i < a->len; i++) {
        uint64_t carry = 0;
        for (uint32_t j = 0; j < b->len; j++) {
            carry += (uint64_t)a->limbs[i] * b->limbs[j] + product->limbs[i + j];
            product->limbs[i + j] = (uint32_t)carry;
            carry >>= 32;
        }
        product->limbs[i + b->len] = (uint32_t)carry;
    }
    big_trim(product);
    return product;
}

/* Quotient of a / divisor; the remainder goes to *remainder. */
static big *big_divmod_small(const big *a, uint32_t divisor, uint32_t *remainder) {
    big *quotient = big_alloc(a->len);
    uint64_t rest = 0;
    for (uint32_t i = a->len; i-- > 0;) {
        rest = rest << 32 | a->limbs[i];
        quotient->limbs[i] = (uint32_t)(rest / divisor);
        rest %= divisor;
    }
    *remainder = (uint32_t)rest;
    big_trim(quotient);
    return quotient;
}

static big *fib_by_addition(uint32_t n) {
    big *current = big_from(0), *next = big_from(1);
    for (uint32_t i = 0; i < n; i++) {
        big *after = big_add(current, next);
        big_free(current);
        current = next;
        next = after;
    }
    big_free(next);
    return current;
}

/* Sets *fk = F(k) and *fk1 = F(k+1) by fast doubling:
 * F(2k) = F(k) (2 F(k+1) - F(k)),  F(2k+1) = F(k)^2 + F(k+1)^2. */
static void fib_doubling(uint32_t k, big **fk, big **fk1) {
    if (k == 0) {
        *fk = big_from(0);
        *fk1 = big_from(1);
        return;
    }
    big *a, *b;
    fib_doubling(k / 2, &a, &b);
    big *twice_b = big_add(b, b);
    big *factor = big_sub(twice_b, a);
    big *even = big_mul(a, factor);
    big *a_sq = big_mul(a, a), *b_sq = big_mul(b, b);
    big *odd = big_add(a_sq, b_sq);
    big_free(twice_b);
    big_free(factor);
    big_free(a_sq);
    big_free(b_sq);
    big_free(a);
    big_free(b);
    if (k % 2 == 0) {
        *fk = even;
        *fk1 = odd;
    } else {
        *fk = odd;
        *fk1 = big_add(even, odd);
        big_free(even);
    }
}

/* Decimal digits of a number, built by appending 9-digit chunks to a string
 * that grows with realloc, then reversed. The caller frees it. */
static char *big_to_decimal(const big *number) {
    size_t capacity = 16, length = 0;
    char *text = bench_nonnull(malloc(capacity), capacity);
    allocation_calls++;
    big *rest = big_alloc(number->len);
    memcpy(rest->limbs, number->limbs, number->len * sizeof(uint32_t));
    do {
        uint32_t chunk;
        big *quotient = big_divmod_small(rest, 1000000000u, &chunk);
        big_free(rest);
        rest = quotient;
        if (length + 10 > capacity) {
            capacity *= 2;
            text = bench_nonnull(realloc(text, capacity), capacity);
            allocation_calls++;
        }
        for (int digit = 0; digit < 9; digit++) {
            text[length++] = (char)('0' + chunk % 10);
            chunk /= 10;
        }
    } while (rest->len > 0);
    big_free(rest);
    while (length > 1 && text[length - 1] == '0') length--;
    for (size_t i = 0; i < length / 2; i++) {
        char t = text[i];
        text[i] = text[length - 1 - i];
        text[length - 1 - i] = t;
    }
    text[length] = '\0';
    return text;
}

static uint64_t hash_text(const char *text) {
    uint64_t hash = 1469598103934665603ULL; /* FNV-1a */
    for (; *text; text++) hash = (hash ^ (unsigned char)*text) * 1099511628211ULL;
    return hash;
}

int main(int argc, char **argv) {
    long rounds = bench_arg(argc, argv, 1, 400);

    /* The decimal conversion itself is checked once against a known value. */
    big *f100 = fib_by_addition(100);
    char *f100_text = big_to_decimal(f100);
    BENCH_CHECK(strcmp(f100_text, "354224848179261915075") == 0, "F(100) = %s", f100_text);
    free(f100_text);
    big_free(f100);

    uint64_t combined_hash = 0, total_digits = 0;
    for (long round = 0; round < rounds; round++) {
        uint32_t n = 200 + (uint32_t)(round * 37 % 800);
        big *by_addition = fib_by_addition(n);
        big *fn, *fn1;
        fib_doubling(n, &fn, &fn1);
        BENCH_CHECK(big_cmp(by_addition, fn) == 0, "F(%u) differs", n);

        /* Cassini: F(n-1) F(n+1) - F(n)^2 = (-1)^n, with F(n-1) = F(n+1) - F(n). */
        big *fn_minus1 = big_sub(fn1, fn);
        big *outer = big_mul(fn_minus1, fn1), *inner = big_mul(fn, fn);
        big *one = big_from(1);
        big *expected_outer = n % 2 == 0 ? big_add(inner, one) : big_sub(inner, one);
        BENCH_CHECK(big_cmp(outer, expected_outer) == 0, "Cassini fails at %u", n);

        char *text = big_to_decimal(fn);
        total_digits += strlen(text);
        combined_hash ^= hash_text(text) + (uint64_t)round;
        free(text);

        big_free(by_addition);
        big_free(fn);
        big_free(fn1);
        big_free(fn_minus1);
        big_free(outer);
        big_free(inner);
        big_free(one);
        big_free(expected_outer);
    }
    printf("churn rounds=%ld digits=%llu hash=%016llx ops=%llu\n", rounds,
           (unsigned long long)total_digits, (unsigned long long)combined_hash,
           (unsigned long long)allocation_calls);
    return 0;
}
