// Package redact removes the secrets a URL may carry before it is printed, logged or stored:
// the password or token in its userinfo and the values of its query string.
package redact

import (
	"net/url"
	"strings"
)

// Mask replaces each secret.
const Mask = "xxxxx"

// URL returns u with its secrets replaced by Mask: the password of user:password@, a lone
// user@ (NATS and many HTTP services take a token there), and the value of every query
// parameter (the keys stay, so token=xxxxx still says what was given). A string that does not
// parse as a URL is masked the same way as far as its shape can be told: everything between
// "://" and the last "@" before the path, and everything after the first "?".
func URL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return roughly(u)
	}
	if p.User != nil {
		if _, hasPassword := p.User.Password(); hasPassword {
			p.User = url.UserPassword(p.User.Username(), Mask)
		} else {
			p.User = url.User(Mask)
		}
	}
	if p.RawQuery != "" {
		p.RawQuery = query(p.RawQuery)
	}
	return p.String()
}

// URLs is URL for each URL of a comma-separated list, such as a NATS_URL naming several
// servers.
func URLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		trimmed := strings.TrimSpace(p)
		if trimmed == "" {
			continue
		}
		parts[i] = strings.Replace(p, trimmed, URL(trimmed), 1)
	}
	return strings.Join(parts, ",")
}

// query masks the value of each parameter of a raw query, keeping the keys in their order.
func query(raw string) string {
	params := strings.Split(raw, "&")
	for i, kv := range params {
		if k, _, ok := strings.Cut(kv, "="); ok {
			params[i] = k + "=" + Mask
		}
	}
	return strings.Join(params, "&")
}

// roughly masks a string that url.Parse rejected (an invalid escape, a bad port), by its shape.
func roughly(u string) string {
	if before, _, ok := strings.Cut(u, "?"); ok {
		u = before + "?" + Mask
	}
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = Mask + authority[i:]
	}
	return scheme + "://" + authority + path
}
