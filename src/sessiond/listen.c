/*
 * listen.c - the listening socket (see listen.h).
 *
 * We create the socket here and hand it to the connection layer
 * (server.c) so that TCP and Unix sockets, port 0 and the loopback check
 * all work the same way.  A Unix socket gets mode 0660:
 * whoever can connect to it can use the management API without a key
 * (docs/security.md invariant 11), so access is left to the file system.  The umask is
 * changed around bind(); this runs at start-up before any thread exists.
 */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BACKLOG 1024

/* Host names (RFC 1123 letters, digits, '-', '.'; '_' as some internal
 * names have) and IPv4 literals: a check here, so a typo is reported at
 * start-up with the key's name rather than as a resolver error. */
static bool host_name_ok(const char *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
        if (!ok)
            return false;
    }
    return true;
}

/*
 * The one parser of server.listen: the configuration check
 * (sessiond_config_validate) and the socket code both call it.  Messages
 * start with "server.listen: ".
 */
int sessiond_listen_parse(const char *listen, sessiond_listen_spec *spec,
                          char *err, size_t errlen)
{
    memset(spec, 0, sizeof(*spec));
    if (strncmp(listen, "unix:", 5) == 0) {
        const char *path = listen + 5;
        size_t n = strlen(path);
        if (n == 0 || n > SESSIOND_UNIX_PATH_MAX) {
            snprintf(err, errlen,
                     "server.listen: a Unix socket path must be 1 to %d "
                     "bytes",
                     SESSIOND_UNIX_PATH_MAX);
            return -1;
        }
        spec->is_unix = true;
        memcpy(spec->path, path, n + 1);
        return 0;
    }

    const char *colon = strrchr(listen, ':');
    const char *host = listen;
    size_t hlen;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, errlen,
                     "server.listen: expected [IPV6]:PORT, got '%.64s'", listen);
            return -1;
        }
        host = listen + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
        char v6[SESSIOND_HOST_MAX + 1];
        struct in6_addr a6;
        if (hlen == 0 || hlen > SESSIOND_HOST_MAX) {
            snprintf(err, errlen, "server.listen: expected [IPV6]:PORT, got '%.64s'",
                     listen);
            return -1;
        }
        memcpy(v6, host, hlen);
        v6[hlen] = '\0';
        if (inet_pton(AF_INET6, v6, &a6) != 1) {
            snprintf(err, errlen, "server.listen: '%.64s' is not an IPv6 address",
                     v6);
            return -1;
        }
    } else {
        if (colon == NULL) {
            snprintf(err, errlen,
                     "server.listen: expected HOST:PORT, [IPV6]:PORT or "
                     "unix:PATH, got '%.64s'",
                     listen);
            return -1;
        }
        hlen = (size_t)(colon - listen);
        if (memchr(listen, ':', hlen) != NULL) {
            snprintf(err, errlen,
                     "server.listen: put an IPv6 address in brackets: "
                     "[%.*s]:PORT",
                     (int)(hlen < 64 ? hlen : 64), listen);
            return -1;
        }
        if (hlen > 253) {
            snprintf(err, errlen,
                     "server.listen: host name longer than 253 bytes");
            return -1;
        }
        if (hlen > 0 && !host_name_ok(listen, hlen)) {
            snprintf(err, errlen,
                     "server.listen: host must be an IPv4 address or a host "
                     "name, got '%.*s'",
                     (int)(hlen < 64 ? hlen : 64), listen);
            return -1;
        }
    }
    if (hlen == 0 || hlen > SESSIOND_HOST_MAX) {
        snprintf(err, errlen, "server.listen: missing or too long host in '%.64s'",
                 listen);
        return -1;
    }
    const char *port = colon + 1;
    size_t plen = strlen(port);
    unsigned long pv = 0;
    bool digits = plen > 0 && plen <= 5;
    for (size_t i = 0; digits && i < plen; i++) {
        if (port[i] < '0' || port[i] > '9')
            digits = false;
        else
            pv = pv * 10 + (unsigned long)(port[i] - '0');
    }
    /* Port 0 asks the kernel for a free port (tests use it). */
    if (!digits || pv > 65535) {
        snprintf(err, errlen,
                 "server.listen: port must be 0..65535 in '%.64s'", listen);
        return -1;
    }
    memcpy(spec->host, host, hlen);
    spec->host[hlen] = '\0';
    snprintf(spec->port, sizeof(spec->port), "%lu", pv);
    return 0;
}

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_UNIX)
        return true;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

static int resolve(const sessiond_listen_spec *spec, struct addrinfo **res)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    return getaddrinfo(spec->host, spec->port, &hints, res);
}

bool sessiond_listen_is_loopback(const sessiond_listen_spec *spec)
{
    if (spec->is_unix)
        return true;
    if (strcmp(spec->host, "localhost") == 0)
        return true;
    struct addrinfo *res = NULL;
    if (resolve(spec, &res) != 0)
        return false;
    bool all = res != NULL;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        if (!addr_is_loopback(ai->ai_addr))
            all = false;
    freeaddrinfo(res);
    return all;
}

static int open_unix(const sessiond_listen_spec *spec, char *url,
                     size_t url_cap, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct stat st;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, spec->path, strlen(spec->path) + 1);

    if (lstat(spec->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen,
                     "server.listen: %s exists and is not a socket",
                     spec->path);
            return -1;
        }
        /* A socket file left by a previous run that did not stop
         * cleanly; if another sessiond still serves it, bind() would be
         * the wrong way to find out, so probe with connect() first. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0) {
            int c = connect(probe, (struct sockaddr *)&sun, sizeof(sun));
            close(probe);
            if (c == 0) {
                snprintf(err, errlen,
                         "server.listen: %s is in use by another process",
                         spec->path);
                return -1;
            }
        }
        unlink(spec->path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "server.listen: socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0117);
    int b = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    int saved = errno;
    umask(old);
    if (b != 0 || chmod(spec->path, 0660) != 0 || listen(fd, BACKLOG) != 0) {
        snprintf(err, errlen, "server.listen: cannot listen on %s: %s",
                 spec->path, strerror(b != 0 ? saved : errno));
        close(fd);
        return -1;
    }
    snprintf(url, url_cap, "unix:%s", spec->path);
    return fd;
}

int sessiond_listen_open(const sessiond_listen_spec *spec, char *url,
                         size_t url_cap, char *err, size_t errlen)
{
    if (spec->is_unix)
        return open_unix(spec, url, url_cap, err, errlen);

    struct addrinfo *res = NULL;
    int gai = resolve(spec, &res);
    if (gai != 0) {
        snprintf(err, errlen, "server.listen: cannot resolve %s: %s",
                 spec->host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    int last_errno = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
            listen(fd, BACKLOG) != 0) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "server.listen: cannot listen on %s:%s: %s",
                 spec->host, spec->port, strerror(last_errno));
        return -1;
    }

    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    unsigned port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "server.listen: getsockname: %s",
                 strerror(errno));
        close(fd);
        return -1;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(url, url_cap, "http://[%s]:%u", host, port);
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(url, url_cap, "http://%s:%u", host, port);
    }
    return fd;
}
