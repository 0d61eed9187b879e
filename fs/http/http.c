/* SPDX-License-Identifier: MIT */
/*
 * The HTTP server of http.h.
 *
 * Connections are accepted here, not by libmicrohttpd, and handed over
 * with MHD_add_connection: on loopback every client is 127.0.0.1, and
 * libmicrohttpd's per-address limit would let one user take every
 * connection (and it does not count unix-socket peers at all).  So each
 * connection is counted against its uid (SO_PEERCRED on a unix socket;
 * on TCP the token's uid once a request shows one, and a shared
 * anonymous count before), and one past HTTP_CONNS_PER_UID is answered
 * 503 and closed.  The bound socket is therefore never handed to
 * libmicrohttpd (MHD_USE_NO_LISTEN_SOCKET).
 *
 * A timer thread shuts down a connection whose request headers have not
 * finished HTTP_HEADER_SECS after it opened or its last request ended
 * (libmicrohttpd's own timeout counts idle time only, so a client
 * sending a byte now and then would hold its slot for ever), one whose
 * body has not moved for as long (a client that stopped short of its
 * Content-Length), and one whose request has been read for
 * HTTP_REQUEST_SECS.  The answering itself has no deadline.
 *
 * Tokens are kept zero-padded to TOKEN_MAX bytes and compared whole with
 * CRYPTO_memcmp against every entry: the time does not depend on which
 * token, or how much of one, matched, nor on its length.  (A SHA-256 of
 * each presented token, compared instead, cost 4 % of the daemon's CPU
 * at 20,000 requests a second.)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "fs.h"
#include "http.h"
#include "oip.h"

#define HTTP_CONNS_PER_UID 64   /* open connections one uid may hold */
#define HTTP_ANON_CONNS 64      /* TCP connections before a token, a
				   loopback peer's owner (or all others) */
#define HTTP_HEADER_SECS 10.0   /* for a request's headers to arrive */
#define HTTP_REQUEST_SECS 300.0 /* for a whole request */
#define HTTP_MAX_BODY ((uint64_t)64 << 20)
/* bodies held at once, in multiples of the body limit: a uid's, all */
#define HTTP_HELD_PER_UID 2
#define HTTP_HELD_ALL 4
#define NO_UID ((uid_t)-1)

#define TOKEN_MAX 256 /* bytes of a token, padded with zeros */

struct token {
	unsigned char text[TOKEN_MAX];
	uid_t uid;
	gid_t gid; /* the uid's primary group, when the tokens were read */
	gid_t groups[64]; /* and its groups, as the group database has them */
	int ngroups;
};

struct conn {
	struct conn *next;    /* under http->lock */
	int fd;
	uid_t uid;            /* NO_UID: a TCP peer without a token yet */
	uid_t peer;           /* a loopback TCP peer's socket owner, or
				 NO_UID: what its tokenless count is of */
	gid_t gid;
	gid_t groups[64];     /* its supplementary groups when it connected
				 (SO_PEERGROUPS), or the token's */
	int ngroups;
	double since;         /* monotonic: opened, its last request ended,
				 or its body's last bytes came */
	bool busy;            /* headers in, request not answered yet */
	bool scoring;         /* the request is being answered */
	bool sending;         /* its answer is being sent */
	uint64_t held;        /* bytes of its request's body kept */
	double began;         /* monotonic: its request's headers came */
	bool shut;            /* shut down by the timer */
};

struct http {
	struct fs *fs;
	int lfd;
	bool tcp;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint64_t max_body;
	struct token *tokens;
	size_t ntokens;
	struct MHD_Daemon *d;
	int stop_fd;          /* eventfd: the threads end */
	pthread_t acceptor, timer;
	bool started;
	pthread_mutex_t lock;
	struct conn *conns;   /* under lock */
};

/* What one request gathers until it is answered. */
struct req {
	struct strbuf body;
	int too_big;          /* 413 (over the limit) or 503 (over the uid's
				 or everyone's share of bodies held) */
	int early;            /* an answer known from the headers (401, 413) */
	uint64_t reserved;    /* body bytes counted in its conn's held */
	bool all;             /* refused for everyone's bodies, not its uid's */
	struct oip_caller user;
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bad(const char *spec, const char *why)
{
	fprintf(stderr, "mlfs: -o http=%s: %s\n", spec, why);
	return -1;
}

/* --- before the daemon detaches: tokens and the socket --- */

/*
 * -o http_token=FILE: "uid token" lines (a uid number or a user name;
 * # comments).  A regular file of root's, mode 0600 or 0400.
 */
static int tokens_read(struct http *h, const char *path)
{
	FILE *fp;
	char line[1024];
	unsigned n = 0;
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "mlfs: http_token=%s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 0177) != 0) {
		close(fd);
		fprintf(stderr, "mlfs: http_token=%s: must be a regular file "
				"of root's, mode 0600\n",
			path);
		return -1;
	}
	fp = fdopen(fd, "r");
	if (!fp) {
		close(fd);
		return -1;
	}
	while (fgets(line, sizeof(line), fp)) {
		char who[256], tok[512], extra[2];
		struct token *t;
		struct passwd pw, *pp = NULL;
		char pwbuf[4096], *end;
		long uid;
		int k;

		n++;
		if (!strchr(line, '\n') && !feof(fp)) {
			fprintf(stderr, "mlfs: http_token=%s:%u: a line over "
					"%zu bytes\n",
				path, n, sizeof(line) - 2);
			explicit_bzero(line, sizeof(line));
			fclose(fp);
			return -1;
		}
		if (line[0] == '#' || strspn(line, " \t\r\n") == strlen(line))
			continue;
		k = sscanf(line, "%255s %511s %1s", who, tok, extra);
		if (k != 2 || strlen(tok) < 16 || strlen(tok) >= TOKEN_MAX) {
			fprintf(stderr, "mlfs: http_token=%s:%u: want \"uid "
					"token\" (a token of 16 to %d "
					"characters)\n",
				path, n, TOKEN_MAX - 1);
			explicit_bzero(line, sizeof(line));
			fclose(fp);
			return -1;
		}
		errno = 0;
		uid = strtol(who, &end, 10);
		if (!*end && (errno || uid < 0 || uid >= (long)UINT32_MAX)) {
			fprintf(stderr, "mlfs: http_token=%s:%u: uid %s is out "
					"of range\n",
				path, n, who);
			fclose(fp);
			return -1;
		}
		if (*end) {
			if (getpwnam_r(who, &pw, pwbuf, sizeof(pwbuf), &pp) ||
			    !pp) {
				fprintf(stderr, "mlfs: http_token=%s:%u: no "
						"user \"%s\"\n",
					path, n, who);
				fclose(fp);
				return -1;
			}
			uid = (long)pp->pw_uid;
		}
		t = realloc(h->tokens, (h->ntokens + 1) * sizeof(*t));
		if (!t) {
			fclose(fp);
			return -1;
		}
		h->tokens = t;
		memset(t[h->ntokens].text, 0, TOKEN_MAX);
		memcpy(t[h->ntokens].text, tok, strlen(tok));
		t[h->ntokens].uid = (uid_t)uid;
		/* its primary group, as the group database has it (a uid
		 * without a passwd entry: a group of the same number) */
		pp = NULL;
		t[h->ntokens].gid =
			getpwuid_r((uid_t)uid, &pw, pwbuf, sizeof(pwbuf), &pp) ==
					0 && pp
				? pp->pw_gid
				: (gid_t)uid;
		t[h->ntokens].ngroups = 64;
		if (!pp || getgrouplist(pp->pw_name, pp->pw_gid,
					t[h->ntokens].groups,
					&t[h->ntokens].ngroups) < 0)
			t[h->ntokens].ngroups = 0; /* more than 64: none */
		h->ntokens++;
		explicit_bzero(tok, sizeof(tok));
		explicit_bzero(line, sizeof(line));
	}
	fclose(fp);
	if (h->ntokens == 0) {
		fprintf(stderr, "mlfs: http_token=%s: no token in it\n", path);
		return -1;
	}
	return 0;
}

/* unix:PATH: a stale socket (nobody listening) is replaced. */
static int bind_unix(struct http *h, const char *spec, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path) || path[0] != '/')
		return bad(spec, "want an absolute path of at most 107 bytes");
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool alive = S_ISSOCK(st.st_mode) && probe >= 0 &&
			     connect(probe, (struct sockaddr *)&sa,
				     sizeof(sa)) == 0;

		if (probe >= 0)
			close(probe);
		if (!S_ISSOCK(st.st_mode) || alive)
			return bad(spec, alive ? "a server listens there"
						 : "exists and is not a socket");
		unlink(path);
	}
	h->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->lfd < 0)
		return bad(spec, strerror(errno));
	/*
	 * Anyone may connect (who they are is the peer's uid): the socket
	 * is made mode 0666 by the umask, never chmod'ed by its path, which
	 * a user who can write the folder could swap for a link to a file
	 * of root's between the bind and the chmod.  Before the daemon has
	 * threads, so the process-wide umask is ours alone.
	 */
	{
		mode_t old = umask(0111);
		int rc = bind(h->lfd, (struct sockaddr *)&sa, sizeof(sa));
		int err = errno;

		umask(old);
		if (rc < 0)
			return bad(spec, strerror(err));
	}
	if (listen(h->lfd, 512) < 0)
		return bad(spec, strerror(errno));
	strcpy(h->unix_path, path);
	snprintf(h->fs->http_addr, sizeof(h->fs->http_addr), "unix:%s", path);
	return 0;
}

/* ADDR:PORT, [ADDR]:PORT for IPv6; port 0 picks one. */
static int bind_tcp(struct http *h, const char *spec)
{
	char host[256], *colon;
	const char *port;
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICHOST |
					      AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char shown[INET6_ADDRSTRLEN];
	int one = 1, rc;

	if (strlen(spec) >= sizeof(host))
		return bad(spec, "too long");
	strcpy(host, spec);
	colon = strrchr(host, ':');
	if (!colon || colon == host)
		return bad(spec, "want unix:PATH or ADDR:PORT");
	*colon = '\0';
	port = colon + 1;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0)
		return bad(spec, gai_strerror(rc));
	h->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->lfd >= 0)
		setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (h->lfd < 0 || bind(h->lfd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(h->lfd, 512) < 0 ||
	    getsockname(h->lfd, (struct sockaddr *)&ss, &sl) < 0) {
		freeaddrinfo(ai);
		return bad(spec, strerror(errno));
	}
	freeaddrinfo(ai);
	h->tcp = true;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, shown, sizeof(shown));
		snprintf(h->fs->http_addr, sizeof(h->fs->http_addr),
			 "[%s]:%u", shown, ntohs(s6->sin6_port));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, shown, sizeof(shown));
		snprintf(h->fs->http_addr, sizeof(h->fs->http_addr), "%s:%u",
			 shown, ntohs(s4->sin_port));
	}
	return 0;
}

int http_bind(struct fs *fs, const struct http_opts *o)
{
	struct http *h;
	int rc;

	if (!o->listen) {
		if (o->tokens)
			fprintf(stderr, "mlfs: http_token=%s: there is no -o "
					"http to use it\n",
				o->tokens);
		return o->tokens ? -1 : 0;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -1;
	h->fs = fs;
	h->lfd = -1;
	h->stop_fd = -1;
	h->max_body = o->max_body ? o->max_body : HTTP_MAX_BODY;
	pthread_mutex_init(&h->lock, NULL);
	fs->http = h;
	if (oip_cache_open(fs) < 0)
		return -1;
	if (strncmp(o->listen, "unix:", 5) == 0) {
		rc = bind_unix(h, o->listen, o->listen + 5);
	} else if (!o->tokens) {
		rc = bad(o->listen, "TCP needs -o http_token=FILE: a TCP peer "
				    "has no uid, its token gives one");
	} else {
		rc = bind_tcp(h, o->listen);
	}
	if (rc == 0 && o->tokens)
		rc = tokens_read(h, o->tokens);
	return rc;
}

/* --- connections --- */

static struct conn *conn_of_fd(struct http *h, int fd)
{
	for (struct conn *c = h->conns; c; c = c->next)
		if (c->fd == fd)
			return c;
	return NULL;
}

/* Open connections of uid (NO_UID: of those without a token from
 * peer), under h->lock. */
static unsigned conns_of(struct http *h, uid_t uid, uid_t peer)
{
	unsigned n = 0;

	for (struct conn *c = h->conns; c; c = c->next)
		n += c->uid == uid && (uid != NO_UID || c->peer == peer);
	return n;
}

/*
 * The owner of a loopback TCP peer's socket, from /proc/net/tcp(6): the
 * line whose local address is the peer's and remote one ours.  So that
 * connections without a token yet are counted by who opened them, and
 * one user's idle connections cannot lock every token holder out.
 * NO_UID when it cannot be told (not loopback, or gone already).
 */
static uid_t loopback_owner(int fd, const struct sockaddr_storage *peer)
{
	struct sockaddr_storage me;
	socklen_t ml = sizeof(me);
	char want_local[64], want_rem[64], line[512];
	uid_t uid = NO_UID;
	FILE *fp;

	if (getsockname(fd, (struct sockaddr *)&me, &ml) < 0)
		return NO_UID;
	if (peer->ss_family == AF_INET) {
		const struct sockaddr_in *p = (const void *)peer;
		const struct sockaddr_in *m = (const void *)&me;

		if ((ntohl(p->sin_addr.s_addr) >> 24) != 127)
			return NO_UID;
		snprintf(want_local, sizeof(want_local), "%08X:%04X",
			 p->sin_addr.s_addr, ntohs(p->sin_port));
		snprintf(want_rem, sizeof(want_rem), "%08X:%04X",
			 m->sin_addr.s_addr, ntohs(m->sin_port));
		fp = fopen("/proc/net/tcp", "re");
	} else if (peer->ss_family == AF_INET6) {
		const struct sockaddr_in6 *p = (const void *)peer;
		const struct sockaddr_in6 *m = (const void *)&me;
		uint32_t pw[4], mw[4];

		if (!IN6_IS_ADDR_LOOPBACK(&p->sin6_addr))
			return NO_UID;
		memcpy(pw, &p->sin6_addr, 16);
		memcpy(mw, &m->sin6_addr, 16);
		snprintf(want_local, sizeof(want_local),
			 "%08X%08X%08X%08X:%04X", pw[0], pw[1], pw[2], pw[3],
			 ntohs(p->sin6_port));
		snprintf(want_rem, sizeof(want_rem), "%08X%08X%08X%08X:%04X",
			 mw[0], mw[1], mw[2], mw[3], ntohs(m->sin6_port));
		fp = fopen("/proc/net/tcp6", "re");
	} else {
		return NO_UID;
	}
	while (fp && fgets(line, sizeof(line), fp)) {
		char local[64], rem[64];
		unsigned long owner;

		/* sl local rem st tx:rx tr:when retrnsmt uid ... */
		if (sscanf(line, " %*s %63s %63s %*s %*s %*s %*s %lu", local,
			   rem, &owner) == 3 &&
		    strcmp(local, want_local) == 0 &&
		    strcmp(rem, want_rem) == 0) {
			uid = (uid_t)owner;
			break;
		}
	}
	if (fp)
		fclose(fp);
	return uid;
}

/* A whole answer written on a socket MHD never saw, then closed. */
static void refuse_raw(int fd, const char *why)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 503 Service Unavailable\r\n"
			 "Content-Type: application/json\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n"
			 "{\"error\": \"%s\"}",
			 strlen(why) + 13, why);

	if (send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* a peer that does not read gets the close alone */
	}
	close(fd);
}

static void accept_one(struct http *h)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct ucred cred = { 0, (uid_t)-1, (gid_t)-1 };
	socklen_t cl = sizeof(cred);
	struct conn *c;
	char why[128];
	int fd = accept4(h->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (!h->tcp &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->uid = h->tcp ? NO_UID : cred.uid;
	c->peer = h->tcp ? loopback_owner(fd, &ss) : cred.uid;
	c->gid = cred.gid;
	if (!h->tcp) {
		/* the groups as they were at connect, with the uid: not the
		 * peer process's later (its pid may be another's by then) */
		socklen_t gl = sizeof(c->groups);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &gl) <
		    0)
			gl = 0; /* more than 64: none, the narrower answer */
		c->ngroups = (int)(gl / sizeof(gid_t));
	}
	c->since = mono();
	pthread_mutex_lock(&h->lock);
	if (conns_of(h, c->uid, c->peer) >=
	    (c->uid == NO_UID ? HTTP_ANON_CONNS : HTTP_CONNS_PER_UID)) {
		pthread_mutex_unlock(&h->lock);
		if (c->uid == NO_UID)
			snprintf(why, sizeof(why), "too many connections "
						   "without a token");
		else
			snprintf(why, sizeof(why),
				 "uid %u has %u connections open already",
				 (unsigned)c->uid, HTTP_CONNS_PER_UID);
		refuse_raw(fd, why);
		free(c);
		return;
	}
	c->next = h->conns;
	h->conns = c;
	pthread_mutex_unlock(&h->lock);
	if (MHD_add_connection(h->d, fd, (struct sockaddr *)&ss, sl) !=
	    MHD_YES) {
		/* MHD closed the socket; the entry goes */
		pthread_mutex_lock(&h->lock);
		for (struct conn **p = &h->conns; *p; p = &(*p)->next)
			if (*p == c) {
				*p = c->next;
				break;
			}
		pthread_mutex_unlock(&h->lock);
		free(c);
	}
}

static void *acceptor_main(void *arg)
{
	struct http *h = arg;
	struct pollfd p[2] = { { h->lfd, POLLIN, 0 }, { h->stop_fd, POLLIN, 0 } };

	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN)
			accept_one(h);
	}
	return NULL;
}

/* Shut down connections past their deadlines (MHD then closes them). */
static void *timer_main(void *arg)
{
	struct http *h = arg;
	struct pollfd p = { h->stop_fd, POLLIN, 0 };

	while (poll(&p, 1, 500) == 0 || (p.revents == 0)) {
		double now = mono();

		pthread_mutex_lock(&h->lock);
		for (struct conn *c = h->conns; c; c = c->next) {
			double quiet = c->sending ? HTTP_REQUEST_SECS
						  : HTTP_HEADER_SECS;

			if (!c->shut && !c->scoring &&
			    (now - c->since > quiet ||
			     (c->busy && !c->sending &&
			      now - c->began > HTTP_REQUEST_SECS))) {
				shutdown(c->fd, SHUT_RDWR);
				c->shut = true;
			}
		}
		pthread_mutex_unlock(&h->lock);
	}
	return NULL;
}

static void on_connection(void *cls, struct MHD_Connection *mc,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct http *h = cls;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct conn *c;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		pthread_mutex_lock(&h->lock);
		*socket_context = ci ? conn_of_fd(h, ci->connect_fd) : NULL;
		pthread_mutex_unlock(&h->lock);
		return;
	}
	c = *socket_context;
	pthread_mutex_lock(&h->lock);
	for (struct conn **p = &h->conns; c && *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			free(c);
			break;
		}
	pthread_mutex_unlock(&h->lock);
	*socket_context = NULL;
}

/* --- requests --- */

static struct conn *conn_of(struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static enum MHD_Result reply(struct MHD_Connection *mc, int status,
			     const char *type, char *body, size_t len,
			     bool close_after)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result rc;

	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer");
	if (close_after)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	rc = MHD_queue_response(mc, (unsigned)status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result reply_error(struct MHD_Connection *mc, int status,
				   const char *why)
{
	struct strbuf sb = { 0 };

	sb_printf(&sb, "{\"error\": \"%s\"}\n", why);
	if (sb.err)
		return MHD_NO;
	return reply(mc, status, "application/json", sb.buf, sb.len, true);
}

/*
 * The caller of a TCP request: the uid its bearer token names, or
 * NO_UID.  Every token is compared, in constant time each.
 */
static uid_t token_uid(const struct http *h, struct MHD_Connection *mc,
		       gid_t *gid, const struct token **tok)
{
	const char *auth = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
						       "Authorization");
	unsigned char text[TOKEN_MAX] = { 0 };
	uid_t uid = NO_UID;
	size_t n;

	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
		return NO_UID;
	auth += 7;
	n = strlen(auth);
	if (n >= TOKEN_MAX)
		return NO_UID;
	memcpy(text, auth, n);
	for (size_t i = 0; i < h->ntokens; i++)
		if (CRYPTO_memcmp(text, h->tokens[i].text, TOKEN_MAX) == 0) {
			uid = h->tokens[i].uid;
			*gid = h->tokens[i].gid;
			*tok = &h->tokens[i];
		}
	return uid;
}

static int body_room(struct http *h, struct conn *c, struct req *q,
		     uint64_t total);

/* The headers are in: who asks, and is the body small enough? */
static int request_begin(struct http *h, struct MHD_Connection *mc,
			 struct conn *c, struct req *q)
{
	const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
						     "Content-Length");
	uid_t uid = c ? c->uid : NO_UID;
	gid_t gid = c ? c->gid : (gid_t)-1;
	const struct token *tok = NULL;
	int status = 0;

	if (h->tcp) {
		uid = token_uid(h, mc, &gid, &tok);
		if (uid == NO_UID)
			return MHD_HTTP_UNAUTHORIZED;
		pthread_mutex_lock(&h->lock);
		if (c->uid != uid) {
			/* counted against the token's uid from now on */
			if (conns_of(h, uid, NO_UID) >= HTTP_CONNS_PER_UID)
				status = MHD_HTTP_SERVICE_UNAVAILABLE;
			else
				c->uid = uid;
		}
		pthread_mutex_unlock(&h->lock);
		if (status)
			return status;
	}
	if (uid == NO_UID)
		return MHD_HTTP_FORBIDDEN;
	q->user.uid = uid;
	q->user.gid = gid;
	if (!h->tcp && c) {
		q->user.groups = c->groups;
		q->user.ngroups = c->ngroups;
	} else if (tok) {
		q->user.groups = tok->groups;
		q->user.ngroups = tok->ngroups;
	}
	/* a body declared over the limit is refused at once; room for
	 * one is taken as its bytes come, not as declared */
	if (cl && strtoull(cl, NULL, 10) > h->max_body)
		return MHD_HTTP_CONTENT_TOO_LARGE;
	return 0;
}

static enum MHD_Result early_reply(struct MHD_Connection *mc, int status)
{
	switch (status) {
	case MHD_HTTP_UNAUTHORIZED:
		return reply_error(mc, status,
				   "a bearer token of -o http_token is needed");
	case MHD_HTTP_CONTENT_TOO_LARGE:
		return reply_error(mc, status, "the body is over the limit "
					       "(-o http_max_body)");
	case MHD_HTTP_SERVICE_UNAVAILABLE:
		return reply_error(mc, status,
				   "too many connections or bodies in flight "
				   "for this uid");
	default:
		return reply_error(mc, status, "no uid for this peer");
	}
}

/*
 * Reserve room for total bytes of q's body (what Content-Length says,
 * or what came so far): 0, or the status that says why not: a body over
 * the limit (413), or more bodies held by its uid (or by everyone) than
 * HTTP_HELD_PER_UID (HTTP_HELD_ALL) limits' worth (503), so that many
 * connections cannot together fill the daemon's memory.
 */
static int body_room(struct http *h, struct conn *c, struct req *q,
		     uint64_t total)
{
	uint64_t uid_held = 0, all = 0, extra;
	int rc = 0;

	if (total <= q->reserved)
		return 0;
	if (total > h->max_body)
		return MHD_HTTP_CONTENT_TOO_LARGE;
	extra = total - q->reserved;
	if (!c) {
		q->reserved = total;
		return 0;
	}
	pthread_mutex_lock(&h->lock);
	for (struct conn *o = h->conns; o; o = o->next) {
		all += o->held;
		if (o->uid == c->uid)
			uid_held += o->held;
	}
	if (uid_held + extra > HTTP_HELD_PER_UID * h->max_body ||
	    all + extra > HTTP_HELD_ALL * h->max_body) {
		rc = MHD_HTTP_SERVICE_UNAVAILABLE;
		q->all = all + extra > HTTP_HELD_ALL * h->max_body;
	} else {
		c->held += extra;
		q->reserved = total;
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct req *q = *con_cls;
	struct conn *c = conn_of(mc);
	struct oip_reply r = { 0 };

	(void)version;
	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		*con_cls = q;
		if (c) {
			pthread_mutex_lock(&h->lock);
			c->busy = true;
			c->since = c->began = mono();
			pthread_mutex_unlock(&h->lock);
		}
		q->early = request_begin(h, mc, c, q);
		/* said at once: the body is not read (the connection closes) */
		return q->early ? early_reply(mc, q->early) : MHD_YES;
	}
	if (*upload_size) {
		if (c) {
			pthread_mutex_lock(&h->lock);
			c->since = mono(); /* the body moves */
			pthread_mutex_unlock(&h->lock);
		}
		if (!q->early && !q->too_big) {
			q->too_big = body_room(h, c, q,
					       q->body.len + *upload_size);
			/* past the first call no answer can be queued until
			 * the body ends: a body that goes over ends the
			 * connection here (one with a Content-Length was
			 * judged by it) */
			if (q->too_big)
				return MHD_NO;
			sb_append(&q->body, upload, *upload_size);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (q->too_big || q->early)
		return early_reply(mc, q->too_big ? q->too_big : q->early);
	if (q->body.err)
		return reply_error(mc, MHD_HTTP_INTERNAL_SERVER_ERROR,
				   "out of memory");
	if (c) {
		pthread_mutex_lock(&h->lock);
		c->scoring = true;
		pthread_mutex_unlock(&h->lock);
	}
	oip_serve(h->fs, &q->user, method, url, q->body.buf ? q->body.buf : "",
		  q->body.len, &r);
	if (c) {
		/* the answer has HTTP_REQUEST_SECS to reach a slow reader */
		pthread_mutex_lock(&h->lock);
		c->scoring = false;
		c->sending = true;
		c->since = mono();
		pthread_mutex_unlock(&h->lock);
	}
	if (r.body.err) {
		sb_free(&r.body);
		return reply_error(mc, MHD_HTTP_INTERNAL_SERVER_ERROR,
				   "out of memory");
	}
	return reply(mc, r.status, r.type ? r.type : "application/json",
		     r.body.buf ? r.body.buf : strdup(""), r.body.len, false);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct req *q = *con_cls;
	struct conn *c = conn_of(mc);

	(void)toe;
	if (c) {
		pthread_mutex_lock(&h->lock);
		c->busy = false;
		c->sending = false;
		c->held = 0;
		c->since = mono();
		pthread_mutex_unlock(&h->lock);
	}
	if (q) {
		sb_free(&q->body);
		free(q);
	}
	*con_cls = NULL;
}

int http_start(struct fs *fs)
{
	struct http *h = fs->http;

	if (!h)
		return 0;
	h->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (h->stop_fd < 0)
		return -errno;
	h->d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD |
			MHD_USE_THREAD_PER_CONNECTION |
			MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC,
		0, NULL, NULL, on_request, h, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)60, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_END);
	if (!h->d)
		return -EIO;
	if (pthread_create(&h->acceptor, NULL, acceptor_main, h) != 0) {
		MHD_stop_daemon(h->d);
		h->d = NULL;
		return -EAGAIN;
	}
	if (pthread_create(&h->timer, NULL, timer_main, h) != 0) {
		uint64_t one = 1;

		if (write(h->stop_fd, &one, sizeof(one)) < 0) {
			/* the acceptor then waits for the unmount */
		}
		pthread_join(h->acceptor, NULL);
		MHD_stop_daemon(h->d);
		h->d = NULL;
		return -EAGAIN;
	}
	h->started = true;
	fs_log(fs, 6, "http: serving on %s", fs->http_addr);
	return 0;
}

void http_stop(struct fs *fs)
{
	struct http *h = fs->http;

	if (!h)
		return;
	if (h->started) {
		uint64_t one = 1;

		if (write(h->stop_fd, &one, sizeof(one)) < 0) {
			/* an eventfd takes a write until its counter is full */
		}
		pthread_join(h->acceptor, NULL);
		pthread_join(h->timer, NULL);
	}
	if (h->d)
		MHD_stop_daemon(h->d); /* closes its connections */
	if (h->lfd >= 0)
		close(h->lfd);
	if (h->unix_path[0])
		unlink(h->unix_path);
	if (h->stop_fd >= 0)
		close(h->stop_fd);
	while (h->conns) {
		struct conn *c = h->conns;

		h->conns = c->next;
		free(c);
	}
	if (h->tokens)
		explicit_bzero(h->tokens, h->ntokens * sizeof(*h->tokens));
	free(h->tokens);
	pthread_mutex_destroy(&h->lock);
	free(h);
	fs->http = NULL;
	oip_cache_close(fs);
}
