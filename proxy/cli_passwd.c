#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "policy/userdb.h"
#include "proxy/cli.h"

/* Reads one line into buf without echo when standard input is a terminal. */
static int read_password(char *buf, size_t len)
{
    struct termios saved;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        struct termios quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        fprintf(stderr, "Password: ");
    }
    char *line = fgets(buf, (int)len, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
        fprintf(stderr, "\n");
    }
    if (line == NULL)
        return -1;
    size_t n = strcspn(buf, "\r\n");
    if (buf[n] == '\0' && n == len - 1)
        return -1; /* no end of line within the limit: too long */
    buf[n] = '\0';
    return 0;
}

int cli_passwd(const char *user)
{
    size_t user_len = strlen(user);
    if (user_len == 0 || user_len > USERDB_NAME_MAX || strchr(user, ':') != NULL) {
        fprintf(stderr, "geoproxy passwd: the user name must be 1 to %d bytes without ':'\n",
                USERDB_NAME_MAX);
        return 2;
    }
    char password[USERDB_PASSWORD_MAX + 2];
    if (read_password(password, sizeof(password)) != 0 || password[0] == '\0') {
        fprintf(stderr, "geoproxy passwd: expected a password of 1 to %d bytes on one line\n",
                USERDB_PASSWORD_MAX);
        return 1;
    }
    char hash[256];
    int err = userdb_hash_password(password, strlen(password), USERDB_DEFAULT_ITERATIONS, hash,
                                   sizeof(hash));
    explicit_bzero(password, sizeof(password));
    if (err != 0) {
        fprintf(stderr, "geoproxy passwd: cannot hash the password\n");
        return 1;
    }
    printf("%s:%s\n", user, hash);
    return 0;
}
