package ingest

import "testing"

// A source is fetched over HTTP when its scheme is http or https in any case (URL schemes are
// case-insensitive, RFC 3986): "HTTPS://…" read as a file's path would be "no such file", from
// the reader and from the commands' check of their files before the database (checkFiles).
func TestIsURLTakesTheSchemeInAnyCase(t *testing.T) {
	for path, want := range map[string]bool{
		"https://example.org/a.jsonl": true,
		"HTTPS://example.org/a.jsonl": true,
		"Http://example.org/a.jsonl":  true,
		"ftp://example.org/a.jsonl":   false,
		"./https.jsonl":               false,
		"-":                           false,
	} {
		if got := IsURL(path); got != want {
			t.Errorf("IsURL(%q) = %v, want %v", path, got, want)
		}
	}
}
