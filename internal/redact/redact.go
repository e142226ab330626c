// Package redact removes the secrets a URL may carry before it is printed, logged or stored:
// the password or token in its userinfo and the values of the query parameters whose names say
// they hold a credential (token=, api_key=, X-Amz-Signature=…); other query parameters stay.
package redact

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Mask replaces each secret.
const Mask = "xxxxx"

// URL returns u with its secrets replaced by Mask: the password of user:password@, a lone
// user@ (NATS and many HTTP services take a token there), and the value of every query
// parameter whose name says it holds a credential (token, key, secret, password, signature,
// auth, session…; the name stays, so token=xxxxx still says what was given). Other parameters
// stay as they are: a feed's search_query=cat:cs.CL is what the source was, and what a
// reader needs to see. A string that does not parse as a URL, or whose path holds an "@" (a
// password with an unescaped "/" parses as a host and port, its rest as the path), is masked
// by its shape: everything between "://" (or the start, for a string without a scheme, such as
// NATS_URL's user:pass@host:4222) and the last "@", and everything after the first "?" that
// follows it.
func URL(u string) string {
	p, err := url.Parse(u)
	if err != nil || strings.Contains(p.Path, "@") || cutUserinfo(u) || !strings.Contains(u, "://") && strings.Contains(u, "@") {
		// The last: no scheme, which the NATS client (and so NATS_URL) takes for nats:// —
		// "user:pass@host:4222" — and url.Parse for a scheme "user" with an opaque rest.
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

// query masks the values of a raw query's credential parameters, keeping every name in its
// order.
func query(raw string) string {
	params := strings.Split(raw, "&")
	for i, kv := range params {
		if k, _, ok := strings.Cut(kv, "="); ok && secretName(k) {
			params[i] = k + "=" + Mask
		}
	}
	return strings.Join(params, "&")
}

// secretName reports whether query parameter name k names a credential: one of its words
// (split at anything but letters and digits, lower-cased) is a credential's name, or ends in
// one — api_key, apikey, access_token, client_secret, X-Amz-Signature, X-Amz-Credential, sig,
// auth, sessionid, code (OAuth) — while keywords or max_results do not.
func secretName(k string) bool {
	if u, err := url.QueryUnescape(k); err == nil {
		k = u
	}
	words := strings.FieldsFunc(strings.ToLower(k), func(r rune) bool {
		return !('a' <= r && r <= 'z' || '0' <= r && r <= '9')
	})
	for _, w := range words {
		switch w {
		case "sig", "pwd", "passwd", "auth", "authorization", "credential", "credentials",
			"session", "sessionid", "code", "jwt", "bearer":
			return true
		}
		for _, end := range []string{"token", "key", "secret", "password", "signature"} {
			if strings.HasSuffix(w, end) {
				return true
			}
		}
	}
	return false
}

// cutUserinfo reports whether u's user information holds an unescaped "?" or "#", which
// url.Parse takes for the start of the query or fragment (nats://user:123?Secret@host parses
// as host "user", port "123", query "Secret@host"): an "@" after "://" with a "?" or "#"
// before it, and no "/" or "=" (a path, or a query's parameter holding an "@").
func cutUserinfo(u string) bool {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return false
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return false
	}
	before := rest[:at]
	return strings.ContainsAny(before, "?#") && !strings.ContainsAny(before, "/=")
}

// roughly masks a string that url.Parse rejected (an invalid escape, a bad port), by its shape:
// a password may hold "/", "?" or "#", so the user information is taken to end at the last
// "@", whatever comes before it (masking a path's "@" too is the safe mistake).
func roughly(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		rest = u // no scheme: user information all the same (user:pass@host:4222)
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = Mask + rest[i:]
	}
	if before, _, ok := strings.Cut(rest, "?"); ok {
		rest = before + "?" + Mask
	}
	if !ok {
		return rest
	}
	return scheme + "://" + rest
}

// quotedPart finds what an error of url.Parse quotes (a port, a character of the host, an
// escape).
var quotedPart = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// ParseError is err, the cause of url.Parse's error for raw (a *url.Error's Err: the error
// itself quotes raw whole), with what it quotes left out when that is not of raw's host, port
// or path: a password holding an unescaped "/", "?" or "#" ends the user information there for
// url.Parse, which takes "user:start" for the host and port, and says `invalid port ":start"
// after host` — the password's start. The error then says how to write those characters.
func ParseError(raw string, err error) error {
	after := raw[strings.LastIndex(raw, "@")+1:] // all of raw without user information
	hidden := false
	msg := quotedPart.ReplaceAllStringFunc(err.Error(), func(q string) string {
		if part, uerr := strconv.Unquote(q); uerr == nil && strings.Contains(after, strings.TrimPrefix(part, ":")) {
			return q
		}
		hidden = true
		return "(not shown: part of the user information)"
	})
	if !hidden {
		return err
	}
	return fmt.Errorf("%s; a \"/\", \"?\" or \"#\" in a password is written %%2F, %%3F or %%23", msg)
}
