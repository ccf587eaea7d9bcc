#include "proxy/json_flat.h"

#include <string.h>

#include "proxy/hex.h"

struct json_cursor {
    const char *p, *end;
    char *buf;
};

static void json_skip_space(struct json_cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Reads a string at c->p (on the opening quote) into c->buf; returns its start, or NULL. */
static const char *json_string(struct json_cursor *c)
{
    if (c->p >= c->end || *c->p != '"')
        return NULL;
    c->p++;
    char *start = c->buf;
    while (c->p < c->end && *c->p != '"') {
        char ch = *c->p++;
        if ((unsigned char)ch < 0x20)
            return NULL;
        if (ch == '\\') {
            if (c->p >= c->end)
                return NULL;
            char e = *c->p++;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                ch = e;
                break;
            case 'b':
                ch = '\b';
                break;
            case 'f':
                ch = '\f';
                break;
            case 'n':
                ch = '\n';
                break;
            case 'r':
                ch = '\r';
                break;
            case 't':
                ch = '\t';
                break;
            case 'u': {
                if (c->end - c->p < 4)
                    return NULL;
                int v = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hex_digit_value(c->p[i]);
                    if (h < 0)
                        return NULL;
                    v = v * 16 + h;
                }
                c->p += 4;
                ch = v < 0x80 ? (char)v : '?';
                break;
            }
            default:
                return NULL;
            }
        }
        *c->buf++ = ch;
    }
    if (c->p >= c->end)
        return NULL;
    c->p++; /* closing quote */
    *c->buf++ = '\0';
    return start;
}

static bool json_integer(struct json_cursor *c, int64_t *out)
{
    bool neg = c->p < c->end && *c->p == '-';
    if (neg)
        c->p++;
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return false;
    uint64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*c->p++ - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

int json_flat_parse(const char *text, size_t len, char *buf, struct json_flat *out)
{
    struct json_cursor c = {text, text + len, buf};
    out->n = 0;
    json_skip_space(&c);
    if (c.p >= c.end || *c.p++ != '{')
        return -1;
    json_skip_space(&c);
    if (c.p < c.end && *c.p == '}')
        return 0;
    for (;;) {
        if (out->n == JSON_FLAT_FIELDS_MAX)
            return -1;
        struct json_flat_field *f = &out->fields[out->n];
        json_skip_space(&c);
        if ((f->key = json_string(&c)) == NULL)
            return -1;
        json_skip_space(&c);
        if (c.p >= c.end || *c.p++ != ':')
            return -1;
        json_skip_space(&c);
        f->str = NULL;
        f->num = 0;
        if (c.p < c.end && *c.p == '"') {
            if ((f->str = json_string(&c)) == NULL)
                return -1;
        } else if (!json_integer(&c, &f->num)) {
            return -1;
        }
        out->n++;
        json_skip_space(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}') {
            c.p++;
            json_skip_space(&c);
            return c.p == c.end ? 0 : -1;
        }
        return -1;
    }
}

const char *json_flat_str(const struct json_flat *j, const char *key)
{
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->fields[i].key, key) == 0)
            return j->fields[i].str;
    return NULL;
}
