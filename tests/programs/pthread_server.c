/* tests/programs/pthread_server.c — a threaded TCP echo server and client,
 * run by pthread_server.sh with and without bulwark preloaded.
 *
 * Proves that a typical threaded network program works on the allocator:
 * every echoed message comes back byte-identical, and the totals printed
 * (which depend only on fixed seeds) are the same under any correct malloc.
 * Its allocation pattern is the one that stresses a per-thread allocator:
 *  - the server has a reader and a writer thread per connection; the reader
 *    receives each message into a buffer grown with realloc and queues it,
 *    the writer sends it back and frees it: every message buffer is
 *    allocated by one thread and freed by another;
 *  - 4 client threads send ~2,000 messages each, of random sizes from 1 byte
 *    to 128 KiB (small size classes and large mappings), and hand both the
 *    sent and the received buffer to a reaper thread that frees them;
 *  - connection and reader/writer threads exit while blocks they allocated
 *    are still alive elsewhere (their heaps are abandoned).
 * Only 127.0.0.1 is used, on an ephemeral port; the whole run is bounded by
 * alarm() so a hang fails instead of blocking the test suite. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum {
    CLIENTS = 4,
    MESSAGES_PER_CLIENT = 2000,
    MAX_MESSAGE = 128 * 1024,
    TIME_LIMIT_SECONDS = 120,
};

static void die(const char *what) {
    fprintf(stderr, "pthread_server: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* ---------------------------------------------------------------- helpers */

/* xorshift64*: a fixed-seed generator, identical on every run. */
static uint64_t rng_next(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Reads exactly len bytes; returns 0 on success, 1 on a clean EOF before the
 * first byte, and dies on errors or a truncated message. */
static int read_full(int fd, void *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t got = recv(fd, (char *)buf + done, len - done, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            die("recv");
        }
        if (got == 0) {
            if (done == 0) return 1;
            errno = EPROTO;
            die("connection closed inside a message");
        }
        done += (size_t)got;
    }
    return 0;
}

/* Sends the 4-byte length header and the payload in one writev (so that
 * Nagle's algorithm never holds half a message back). */
static void send_message(int fd, const unsigned char *payload, uint32_t len) {
    uint32_t header = htonl(len);
    struct iovec parts[2] = {{&header, sizeof header}, {(void *)payload, len}};
    size_t total = sizeof header + len;
    size_t sent = 0;
    while (sent < total) {
        struct msghdr message = {0};
        struct iovec rest[2];
        int count = 0;
        size_t skip = sent;
        for (int i = 0; i < 2; i++) {
            if (skip >= parts[i].iov_len) {
                skip -= parts[i].iov_len;
                continue;
            }
            rest[count].iov_base = (char *)parts[i].iov_base + skip;
            rest[count].iov_len = parts[i].iov_len - skip;
            skip = 0;
            count++;
        }
        message.msg_iov = rest;
        message.msg_iovlen = (size_t)count;
        ssize_t put = sendmsg(fd, &message, MSG_NOSIGNAL);
        if (put < 0) {
            if (errno == EINTR) continue;
            die("sendmsg");
        }
        sent += (size_t)put;
    }
}

static void set_nodelay(int fd) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY");
}

/* A blocking FIFO of malloc'd nodes, shared by a producer and a consumer
 * thread. A node with data == NULL and last set ends the stream. */
struct node {
    struct node *next;
    unsigned char *data;
    unsigned char *data2;
    uint32_t len;
    int last;
};

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    struct node *head, *tail;
};

static void queue_init(struct queue *q) {
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->nonempty, NULL);
    q->head = q->tail = NULL;
}

static void queue_destroy(struct queue *q) {
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->nonempty);
}

static void queue_push(struct queue *q, unsigned char *data, unsigned char *data2, uint32_t len,
                       int last) {
    struct node *n = malloc(sizeof *n);
    if (n == NULL) die("malloc(node)");
    n->next = NULL;
    n->data = data;
    n->data2 = data2;
    n->len = len;
    n->last = last;
    pthread_mutex_lock(&q->lock);
    if (q->tail != NULL)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

static struct node *queue_pop(struct queue *q) {
    pthread_mutex_lock(&q->lock);
    while (q->head == NULL) pthread_cond_wait(&q->nonempty, &q->lock);
    struct node *n = q->head;
    q->head = n->next;
    if (q->head == NULL) q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return n;
}

/* ---------------------------------------------------------------- server */

struct connection {
    int fd;
    struct queue outgoing; /* reader -> writer */
    pthread_t reader, writer;
};

/* Receives messages into realloc-grown buffers (as real network code does
 * when the size is only known chunk by chunk) and queues them for the writer. */
static void *connection_reader(void *arg) {
    struct connection *c = arg;
    for (;;) {
        uint32_t header;
        if (read_full(c->fd, &header, sizeof header) == 1) break; /* client closed */
        uint32_t len = ntohl(header);
        if (len == 0 || len > MAX_MESSAGE) {
            errno = EPROTO;
            die("bad message length");
        }
        size_t capacity = len < 256 ? len : 256;
        unsigned char *buf = malloc(capacity);
        if (buf == NULL) die("malloc(receive buffer)");
        size_t have = 0;
        while (have < len) {
            if (have == capacity) {
                capacity = capacity * 2 < len ? capacity * 2 : len;
                unsigned char *bigger = realloc(buf, capacity);
                if (bigger == NULL) die("realloc(receive buffer)");
                buf = bigger;
            }
            if (read_full(c->fd, buf + have, capacity - have) != 0) {
                errno = EPROTO;
                die("connection closed inside a message");
            }
            have = capacity;
        }
        queue_push(&c->outgoing, buf, NULL, len, 0);
    }
    queue_push(&c->outgoing, NULL, NULL, 0, 1);
    return NULL;
}

/* Echoes queued messages and frees them: buffers malloc'd by the reader. */
static void *connection_writer(void *arg) {
    struct connection *c = arg;
    for (;;) {
        struct node *n = queue_pop(&c->outgoing);
        if (n->last) {
            free(n);
            break;
        }
        send_message(c->fd, n->data, n->len);
        free(n->data);
        free(n);
    }
    shutdown(c->fd, SHUT_WR);
    return NULL;
}

struct server {
    int listen_fd;
    struct connection *connections[CLIENTS];
    pthread_t acceptor;
};

static void *server_accept(void *arg) {
    struct server *s = arg;
    for (int i = 0; i < CLIENTS; i++) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) {
                i--;
                continue;
            }
            die("accept");
        }
        set_nodelay(fd);
        struct connection *c = calloc(1, sizeof *c);
        if (c == NULL) die("calloc(connection)");
        c->fd = fd;
        queue_init(&c->outgoing);
        if (pthread_create(&c->reader, NULL, connection_reader, c) != 0) die("pthread_create");
        if (pthread_create(&c->writer, NULL, connection_writer, c) != 0) die("pthread_create");
        s->connections[i] = c;
    }
    return NULL;
}

/* ---------------------------------------------------------------- client */

/* The reaper frees what client threads allocated. */
static struct queue reaper_queue;

static void *reaper(void *arg) {
    (void)arg;
    for (;;) {
        struct node *n = queue_pop(&reaper_queue);
        int last = n->last;
        free(n->data);
        free(n->data2);
        free(n);
        if (last) break;
    }
    return NULL;
}

struct client {
    int index;
    uint16_t port;
    pthread_t thread;
    /* results */
    uint64_t messages, bytes, checksum, mismatches;
};

/* Sizes: mostly small, some medium, a few above the largest size class. */
static uint32_t pick_size(uint64_t *rng) {
    uint64_t r = rng_next(rng);
    unsigned kind = (unsigned)(r % 100);
    r >>= 8;
    if (kind < 80) return 1 + (uint32_t)(r % 2048);
    if (kind < 95) return 2049 + (uint32_t)(r % (16384 - 2048));
    return 16385 + (uint32_t)(r % (MAX_MESSAGE - 16384));
}

static void *client_run(void *arg) {
    struct client *cl = arg;
    uint64_t rng = 0x1234567ull + (uint64_t)cl->index * 0x9E3779B97F4A7C15ull;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(cl->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
    set_nodelay(fd);

    uint64_t checksum = 1469598103934665603ull; /* FNV-1a over every echo */
    for (int m = 0; m < MESSAGES_PER_CLIENT; m++) {
        uint32_t len = pick_size(&rng);
        unsigned char *sent = malloc(len);
        if (sent == NULL) die("malloc(message)");
        uint64_t fill = rng_next(&rng);
        for (uint32_t i = 0; i < len; i++) {
            if (i % 8 == 0) fill = rng_next(&rng);
            sent[i] = (unsigned char)(fill >> (8 * (i % 8)));
        }
        send_message(fd, sent, len);

        uint32_t header;
        if (read_full(fd, &header, sizeof header) != 0) {
            errno = EPROTO;
            die("server closed early");
        }
        if (ntohl(header) != len) {
            errno = EPROTO;
            die("echo length differs");
        }
        unsigned char *received = malloc(len);
        if (received == NULL) die("malloc(echo)");
        if (read_full(fd, received, len) != 0) {
            errno = EPROTO;
            die("server closed inside an echo");
        }
        if (memcmp(sent, received, len) != 0) cl->mismatches++;
        for (uint32_t i = 0; i < len; i += 61)
            checksum = (checksum ^ received[i]) * 1099511628211ull;
        checksum = (checksum ^ len) * 1099511628211ull;
        cl->messages++;
        cl->bytes += len;
        /* Both buffers are freed by the reaper thread, not by this one. */
        queue_push(&reaper_queue, sent, received, len, 0);
    }
    shutdown(fd, SHUT_WR);
    char extra;
    if (recv(fd, &extra, 1, 0) != 0) {
        errno = EPROTO;
        die("data after the last echo");
    }
    close(fd);
    cl->checksum = checksum;
    return NULL;
}

/* ---------------------------------------------------------------- main */

int main(void) {
    alarm(TIME_LIMIT_SECONDS); /* a hang is a failure, not a stuck suite */

    struct server server = {0};
    server.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (server.listen_fd < 0) die("socket");
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = 0; /* ephemeral */
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(server.listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
    if (listen(server.listen_fd, CLIENTS) != 0) die("listen");
    socklen_t addr_len = sizeof addr;
    if (getsockname(server.listen_fd, (struct sockaddr *)&addr, &addr_len) != 0) die("getsockname");
    uint16_t port = ntohs(addr.sin_port);
    if (pthread_create(&server.acceptor, NULL, server_accept, &server) != 0) die("pthread_create");

    queue_init(&reaper_queue);
    pthread_t reaper_thread;
    if (pthread_create(&reaper_thread, NULL, reaper, NULL) != 0) die("pthread_create");

    struct client clients[CLIENTS];
    memset(clients, 0, sizeof clients);
    for (int i = 0; i < CLIENTS; i++) {
        clients[i].index = i;
        clients[i].port = port;
        if (pthread_create(&clients[i].thread, NULL, client_run, &clients[i]) != 0)
            die("pthread_create");
    }
    for (int i = 0; i < CLIENTS; i++) pthread_join(clients[i].thread, NULL);

    pthread_join(server.acceptor, NULL);
    for (int i = 0; i < CLIENTS; i++) {
        struct connection *c = server.connections[i];
        pthread_join(c->reader, NULL);
        pthread_join(c->writer, NULL);
        close(c->fd);
        queue_destroy(&c->outgoing);
        free(c);
    }
    close(server.listen_fd);
    queue_push(&reaper_queue, NULL, NULL, 0, 1);
    pthread_join(reaper_thread, NULL);
    queue_destroy(&reaper_queue);

    uint64_t messages = 0, bytes = 0, mismatches = 0, checksum = 0;
    for (int i = 0; i < CLIENTS; i++) {
        printf("client %d: %llu messages, %llu bytes, checksum %016llx\n", i,
               (unsigned long long)clients[i].messages, (unsigned long long)clients[i].bytes,
               (unsigned long long)clients[i].checksum);
        messages += clients[i].messages;
        bytes += clients[i].bytes;
        mismatches += clients[i].mismatches;
        checksum ^= clients[i].checksum;
    }
    printf("total: %llu messages, %llu bytes echoed, %llu mismatches, checksum %016llx\n",
           (unsigned long long)messages, (unsigned long long)bytes, (unsigned long long)mismatches,
           (unsigned long long)checksum);
    return mismatches == 0 && messages == (uint64_t)CLIENTS * MESSAGES_PER_CLIENT ? 0 : 1;
}
