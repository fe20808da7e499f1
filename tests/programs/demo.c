/* tests/programs/demo.c — the program `make run` shows running on bulwark.
 *
 * An ordinary C program that knows nothing about bulwark (it is not linked
 * with it; demo-run.sh preloads the library): it generates 300,000 words of
 * text from a fixed seed, counts them in a chained hash table of malloc'd
 * nodes and strdup'd keys (growing the table with calloc, a text buffer with
 * realloc), prints the five most frequent words, and frees everything. At exit
 * it looks up bw_print_stats with dlsym(RTLD_DEFAULT) and, when bulwark is the
 * preloaded allocator, prints its statistics to stderr; otherwise it says the
 * allocator is not loaded and exits 3, so demo-run.sh can tell. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { WORDS = 300000, VOCABULARY = 5000 };

struct entry {
    struct entry *next;
    char *word;
    unsigned long count;
};

struct table {
    struct entry **buckets;
    size_t bucket_count;
    size_t entries;
};

static uint64_t rng_state = 0x5DEECE66Dull;

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static void *xmalloc(size_t size) {
    void *p = malloc(size);
    if (p == NULL) {
        perror("demo: malloc");
        exit(1);
    }
    return p;
}

static uint64_t hash_word(const char *word) {
    uint64_t h = 1469598103934665603ull;
    for (; *word != '\0'; word++) h = (h ^ (unsigned char)*word) * 1099511628211ull;
    return h;
}

/* Doubles the bucket array once the load factor reaches 1. */
static void table_grow(struct table *t) {
    size_t new_count = t->bucket_count * 2;
    struct entry **new_buckets = calloc(new_count, sizeof *new_buckets);
    if (new_buckets == NULL) {
        perror("demo: calloc");
        exit(1);
    }
    for (size_t i = 0; i < t->bucket_count; i++) {
        struct entry *e = t->buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            size_t slot = hash_word(e->word) & (new_count - 1);
            e->next = new_buckets[slot];
            new_buckets[slot] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = new_buckets;
    t->bucket_count = new_count;
}

static void table_add(struct table *t, const char *word) {
    size_t slot = hash_word(word) & (t->bucket_count - 1);
    for (struct entry *e = t->buckets[slot]; e != NULL; e = e->next) {
        if (strcmp(e->word, word) == 0) {
            e->count++;
            return;
        }
    }
    struct entry *e = xmalloc(sizeof *e);
    e->word = strdup(word);
    if (e->word == NULL) {
        perror("demo: strdup");
        exit(1);
    }
    e->count = 1;
    e->next = t->buckets[slot];
    t->buckets[slot] = e;
    if (++t->entries > t->bucket_count) table_grow(t);
}

static int by_count_then_word(const void *a, const void *b) {
    const struct entry *x = *(const struct entry *const *)a;
    const struct entry *y = *(const struct entry *const *)b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

/* A word of the vocabulary: its index picks the letters. Small indexes are
 * drawn far more often (the minimum of three draws), like real text. */
static void make_word(char *out, size_t index) {
    static const char *const syllables[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo",
                                            "be", "da", "fu", "go", "hi", "ju", "pe", "zo"};
    size_t n = 1 + index % 3;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(out, syllables[index % 16]);
        index /= 16;
    }
}

static size_t draw_index(void) {
    size_t a = rng_next() % VOCABULARY, b = rng_next() % VOCABULARY, c = rng_next() % VOCABULARY;
    size_t m = a < b ? a : b;
    return m < c ? m : c;
}

int main(void) {
    /* The text: one growing buffer, words separated by spaces. */
    size_t capacity = 4096, length = 0;
    char *text = xmalloc(capacity);
    for (int i = 0; i < WORDS; i++) {
        char word[16];
        make_word(word, draw_index());
        size_t word_length = strlen(word);
        while (length + word_length + 2 > capacity) {
            char *bigger = realloc(text, capacity * 2);
            if (bigger == NULL) {
                perror("demo: realloc");
                return 1;
            }
            text = bigger;
            capacity *= 2;
        }
        memcpy(text + length, word, word_length);
        length += word_length;
        text[length++] = ' ';
    }
    text[length] = '\0';

    struct table t = {calloc(16, sizeof(struct entry *)), 16, 0};
    if (t.buckets == NULL) {
        perror("demo: calloc");
        return 1;
    }
    char *save = NULL;
    for (char *word = strtok_r(text, " ", &save); word != NULL; word = strtok_r(NULL, " ", &save))
        table_add(&t, word);

    struct entry **all = xmalloc(t.entries * sizeof *all);
    size_t n = 0;
    for (size_t i = 0; i < t.bucket_count; i++)
        for (struct entry *e = t.buckets[i]; e != NULL; e = e->next) all[n++] = e;
    qsort(all, n, sizeof *all, by_count_then_word);

    printf("demo: %d words of generated text, %zu distinct, %zu KiB of text\n", WORDS, n,
           capacity / 1024);
    printf("demo: top 5 words:\n");
    for (size_t i = 0; i < 5 && i < n; i++) printf("  %-8s %lu\n", all[i]->word, all[i]->count);

    for (size_t i = 0; i < n; i++) {
        free(all[i]->word);
        free(all[i]);
    }
    free(all);
    free(t.buckets);
    free(text);
    fflush(stdout);

    /* Found only when bulwark is the preloaded (or linked) allocator. */
    void (*print_stats)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "bw_print_stats");
    if (print_stats == NULL) {
        fprintf(stderr, "demo: bulwark is not loaded (no bw_print_stats); run it with "
                        "LD_PRELOAD=.../libbulwark.so\n");
        return 3;
    }
    fprintf(stderr, "demo: bulwark statistics at exit (bw_print_stats):\n");
    print_stats(STDERR_FILENO);
    return 0;
}
