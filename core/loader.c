/* loader.c - parsing loader rules and matching block ids against them. */
#include "loader.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RULES_FILE_MAX (1024 * 1024)
#define NAME_MAX_LEN 63

struct parser {
	const char *name;
	int line;
	const struct catalog *cat;
	struct loaders *l;
	char *err;
	size_t errlen;
};

static enum sh_err fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static enum sh_err fail(struct parser *p, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "loader rules '%s' line %d: %s", p->name, p->line, msg);
	return SH_EINVAL;
}

static int is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

static int capture_index(const struct load_rule *r, const char *name, size_t len)
{
	for (int i = 0; i < r->ncaptures; i++)
		if (strlen(r->names[i]) == len && strncmp(r->names[i], name, len) == 0)
			return i;
	return -1;
}

/* Collect the {name} captures of a pattern; two captures may not touch. */
static enum sh_err parse_pattern(struct parser *p, struct load_rule *r, const char *pat)
{
	const char *s = pat;

	while ((s = strchr(s, '{'))) {
		const char *end = strchr(s, '}');
		size_t len = end ? (size_t)(end - s - 1) : 0;

		if (!end || len == 0 || len > NAME_MAX_LEN)
			return fail(p, "malformed {name} in pattern '%s'", pat);
		for (size_t i = 0; i < len; i++)
			if (!is_name_char(s[1 + i]))
				return fail(p, "malformed {name} in pattern '%s'", pat);
		if (end[1] == '{')
			return fail(p, "two captures side by side in '%s' are ambiguous", pat);
		if (capture_index(r, s + 1, len) >= 0)
			return fail(p, "capture {%.*s} appears twice", (int)len, s + 1);
		if (r->ncaptures == LOADER_CAPTURES_MAX)
			return fail(p, "more than %d captures", LOADER_CAPTURES_MAX);
		if (!(r->names[r->ncaptures++] = strndup(s + 1, len)))
			return SH_ENOMEM;
		s = end + 1;
	}
	return SH_OK;
}

static enum sh_err start_rule(struct parser *p, const char *pat)
{
	struct load_rule *grown, *r;

	if (!*pat)
		return fail(p, "'block' needs a pattern");
	grown = realloc(p->l->rules, (p->l->nrules + 1) * sizeof(*grown));
	if (!grown)
		return SH_ENOMEM;
	p->l->rules = grown;
	r = &grown[p->l->nrules++];
	memset(r, 0, sizeof(*r));
	r->line = p->line;
	if (!(r->pattern = strdup(pat)))
		return SH_ENOMEM;
	return parse_pattern(p, r, pat);
}

/* Rewrite $name into $1.. in the order names first appear. */
static enum sh_err rewrite_where(struct parser *p, struct load_rule *r, struct load_step *st,
				 const char *cond)
{
	size_t cap = strlen(cond) * 2 + 16, len = 0;
	char *out = malloc(cap);
	const char *s = cond;

	if (!out)
		return SH_ENOMEM;
	while (*s) {
		size_t n = 0;
		int ci, param = -1;

		if (*s == '$' && isdigit((unsigned char)s[1])) {
			free(out);
			return fail(p, "use $name from the pattern, not $%c", s[1]);
		}
		if (*s != '$' || !is_name_char(s[1])) {
			out[len++] = *s++;
			continue;
		}
		while (is_name_char(s[1 + n]))
			n++;
		ci = capture_index(r, s + 1, n);
		if (ci < 0) {
			free(out);
			return fail(p, "$%.*s is not captured by the pattern '%s'", (int)n, s + 1, r->pattern);
		}
		for (int i = 0; i < st->nparams; i++)
			if (st->capture[i] == ci)
				param = i;
		if (param < 0) {
			param = st->nparams++;
			st->capture[param] = ci;
		}
		len += (size_t)snprintf(out + len, cap - len, "$%d", param + 1);
		s += 1 + n;
	}
	out[len] = '\0';
	st->where = out;
	return SH_OK;
}

/* A model name quoted as in SQL ("Order Item", "say ""hi"""): unescaped in
 * place after the opening quote; *rest is past the closing one. */
static enum sh_err unquote(char *line, char **rest)
{
	char *w = line + 1;

	for (char *r = line + 1; *r; r++) {
		if (*r == '"' && r[1] == '"') {
			*w++ = *r++;
			continue;
		}
		if (*r == '"') {
			*w = '\0';
			*rest = r + 1;
			return SH_OK;
		}
		*w++ = *r;
	}
	return SH_EINVAL;
}

/* "MODEL where CONDITION", MODEL bare or quoted */
static enum sh_err add_step(struct parser *p, char *line)
{
	struct load_rule *r;
	struct load_step *grown, *st;
	char *model = line, *rest = line;

	if (!p->l->nrules)
		return fail(p, "a model line before any 'block' line");
	r = &p->l->rules[p->l->nrules - 1];
	if (*line == '"') {
		if (unquote(line, &rest) != SH_OK)
			return fail(p, "unterminated quoted model name");
		model = line + 1;
	} else {
		while (*rest && !isspace((unsigned char)*rest))
			rest++;
		if (*rest)
			*rest++ = '\0';
	}
	while (isspace((unsigned char)*rest))
		rest++;
	if (strncasecmp(rest, "where", 5) != 0 || !isspace((unsigned char)rest[5]))
		return fail(p, "expected 'MODEL where CONDITION'");
	rest += 6;
	while (isspace((unsigned char)*rest))
		rest++;
	if (!*rest)
		return fail(p, "empty condition for '%s'", model);
	grown = realloc(r->steps, (r->nsteps + 1) * sizeof(*grown));
	if (!grown)
		return SH_ENOMEM;
	r->steps = grown;
	st = &grown[r->nsteps];
	memset(st, 0, sizeof(*st));
	st->line = p->line;
	if (!(st->model = catalog_find(p->cat, model))) {
		const char *why = catalog_skip_reason(p->cat, model);

		return why ? fail(p, "table '%s' is not a model: %s", model, why)
			   : fail(p, "unknown model '%s'", model);
	}
	for (size_t i = 0; i < r->nsteps; i++)
		if (r->steps[i].model == st->model)
			return fail(p, "model '%s' appears twice in one rule", model);
	r->nsteps++;
	return rewrite_where(p, r, st, rest);
}

static enum sh_err parse_line(struct parser *p, char *line)
{
	char *end = line + strlen(line);
	int indented = isspace((unsigned char)line[0]);

	while (end > line && isspace((unsigned char)end[-1]))
		*--end = '\0';
	while (isspace((unsigned char)*line))
		line++;
	if (!*line || *line == '#')
		return SH_OK;
	if (!indented) {
		if (strncmp(line, "block", 5) != 0 || (line[5] && !isspace((unsigned char)line[5])))
			return fail(p, "expected 'block PATTERN'");
		line += 5;
		while (isspace((unsigned char)*line))
			line++;
		return start_rule(p, line);
	}
	return add_step(p, line);
}

enum sh_err loaders_parse_text(const char *text, const char *name, const struct catalog *cat,
			       struct loaders **out, char *err, size_t errlen)
{
	struct parser p = { .name = name, .cat = cat, .err = err, .errlen = errlen };
	char *copy = strdup(text), *line, *save = NULL;
	enum sh_err rc = SH_OK;

	*out = NULL;
	p.l = calloc(1, sizeof(*p.l));
	if (!copy || !p.l) {
		free(copy);
		free(p.l);
		return SH_ENOMEM;
	}
	/* strtok_r would skip blank lines and so miscount: walk by hand */
	for (line = copy; !rc && line; line = save) {
		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		p.line++;
		rc = parse_line(&p, line);
	}
	free(copy);
	if (rc) {
		loaders_free(p.l);
		return rc;
	}
	*out = p.l;
	return SH_OK;
}

enum sh_err loaders_parse(const char *path, const struct catalog *cat, struct loaders **out,
			  char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *text;
	size_t n;
	enum sh_err rc;

	*out = NULL;
	if (!f) {
		snprintf(err, errlen, "loader rules '%s': %s", path, strerror(errno));
		return SH_EINVAL;
	}
	text = malloc(RULES_FILE_MAX + 1);
	n = text ? fread(text, 1, RULES_FILE_MAX + 1, f) : 0;
	fclose(f);
	if (!text)
		return SH_ENOMEM;
	if (n > RULES_FILE_MAX) {
		free(text);
		snprintf(err, errlen, "loader rules '%s': larger than %d bytes", path, RULES_FILE_MAX);
		return SH_EINVAL;
	}
	text[n] = '\0';
	rc = loaders_parse_text(text, path, cat, out, err, errlen);
	free(text);
	return rc;
}

/* Match pat against id, filling values; {x} takes the shortest text that lets the rest match. */
static int match(const char *pat, const char *id, char **values, int *k)
{
	if (!*pat)
		return !*id;
	if (*pat == '{') {
		const char *rest = strchr(pat, '}') + 1;
		int mine = (*k)++;

		for (const char *end = id + 1; end <= id + strlen(id); end++) {
			if (match(rest, end, values, k)) {
				values[mine] = strndup(id, (size_t)(end - id));
				return 1;
			}
		}
		(*k)--;
		return 0;
	}
	return *pat == *id && match(pat + 1, id + 1, values, k);
}

const struct load_rule *loaders_match(const struct loaders *l, const char *id,
				      char *values[LOADER_CAPTURES_MAX])
{
	memset(values, 0, LOADER_CAPTURES_MAX * sizeof(*values));
	for (size_t i = 0; l && i < l->nrules; i++) {
		int k = 0;

		if (match(l->rules[i].pattern, id, values, &k)) {
			for (int c = 0; c < l->rules[i].ncaptures; c++)
				if (!values[c]) {
					loader_values_free(values);
					return NULL;
				}
			return &l->rules[i];
		}
		loader_values_free(values);
	}
	return NULL;
}

void loader_values_free(char *values[LOADER_CAPTURES_MAX])
{
	for (int i = 0; i < LOADER_CAPTURES_MAX; i++) {
		free(values[i]);
		values[i] = NULL;
	}
}

void loaders_free(struct loaders *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nrules; i++) {
		struct load_rule *r = &l->rules[i];

		for (size_t j = 0; j < r->nsteps; j++)
			free(r->steps[j].where);
		for (int j = 0; j < r->ncaptures; j++)
			free(r->names[j]);
		free(r->steps);
		free(r->pattern);
	}
	free(l->rules);
	free(l);
}
