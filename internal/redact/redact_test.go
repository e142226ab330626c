package redact

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestURLMasksUserinfoAndCredentialParameters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"nats://user:NatsSecret@127.0.0.1:4222", "nats://user:xxxxx@127.0.0.1:4222"},
		{"nats://NatsToken@127.0.0.1:4222", "nats://xxxxx@127.0.0.1:4222"},
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"http://u:UrlSecret@host/feed.xml?token=QuerySecret&max=10", "http://u:xxxxx@host/feed.xml?token=xxxxx&max=10"},
		{"https://host/a?api_key=K1&X-Amz-Signature=S1&access_token=T1&client_secret=C1&sig=G1",
			"https://host/a?api_key=xxxxx&X-Amz-Signature=xxxxx&access_token=xxxxx&client_secret=xxxxx&sig=xxxxx"},
		// What a source was stays readable.
		{"https://export.arxiv.org/api/query?search_query=cat:cs.CL&max_results=100&keywords=moe",
			"https://export.arxiv.org/api/query?search_query=cat:cs.CL&max_results=100&keywords=moe"},
		{"https://host/a?apikey=K&X-Amz-Credential=C&sessionid=S", "https://host/a?apikey=xxxxx&X-Amz-Credential=xxxxx&sessionid=xxxxx"},
		{"https://host/a?b=1&flag&c=", "https://host/a?b=1&flag&c="},
		{"https://host/a", "https://host/a"},
		// url.Parse rejects these; they are masked by their shape.
		{"http://u:UrlSecret@host:bad/x?token=QuerySecret", "http://xxxxx@host:bad/x?xxxxx"},
		{"http://u:Url%zzSecret@host/x", "http://xxxxx@host/x"},
		// A password with an unescaped "/" or "?" (base64 has "/"): the user information ends
		// at the last "@", not at the first "/" or "?".
		{"nats://user:Se/cretPart@127.0.0.1:4222", "nats://xxxxx@127.0.0.1:4222"},
		{"https://user:Se/cretPart@api.example.com/v1", "https://xxxxx@api.example.com/v1"},
		{"https://user:SeCrEtPrefix?rest@api.example.com/v1?x=1", "https://xxxxx@api.example.com/v1?xxxxx"},
		// It parses when the password's part before the "/" is a port: the rest is the path.
		{"https://user:123/SecretRest@api.example.com/v1", "https://xxxxx@api.example.com/v1"},
		// Or before a "?" or "#": the rest is the query or fragment.
		{"nats://user:123?SecretRest@127.0.0.1:4222", "nats://xxxxx@127.0.0.1:4222"},
		{"nats://Tok#SecretRest@127.0.0.1:4222", "nats://xxxxx@127.0.0.1:4222"},
		{"https://user:123#SecretRest@api.example.com/v1", "https://xxxxx@api.example.com/v1"},
		// Without a scheme, which the NATS client takes for nats:// (NATS_URL=user:pass@host:4222),
		// and url.Parse for the scheme "user" with an opaque rest.
		{"user:NatsSecret@127.0.0.1:4222", "xxxxx@127.0.0.1:4222"},
		{"NatsToken@127.0.0.1", "xxxxx@127.0.0.1"},
		{"user:Se/cret@api.example.com/v1?token=QuerySecret", "xxxxx@api.example.com/v1?xxxxx"},
		{"127.0.0.1:4222", "127.0.0.1:4222"},
		{"localhost", "localhost"},
		// A query's "@" is not user information.
		{"https://host?email=a@b.example", "https://host?email=a@b.example"},
		{"https://host/feed?email=a@b.example", "https://host/feed?email=a@b.example"},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestURLsMasksEachServerOfAList(t *testing.T) {
	t.Parallel()
	got := URLs("nats://a:SecretA@h1:4222, nats://SecretB@h2:4222")
	if want := "nats://a:xxxxx@h1:4222, nats://xxxxx@h2:4222"; got != want {
		t.Errorf("URLs = %q, want %q", got, want)
	}
	if strings.Contains(got, "Secret") {
		t.Errorf("URLs left a secret: %q", got)
	}
}

// url.Parse's error quotes what it could not take: a port, a host's character, an escape.
// Of a password holding an unescaped "/", "?" or "#", it takes the start for the port, and
// its error quoted it; what is of the host, port or path stays quoted, as it says the fault.
func TestParseErrorQuotesNothingOfTheUserInformation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw, want string
		hidden    bool
	}{
		{"nats://user:Secret1/x@127.0.0.1:4222", "invalid port (not shown: part of the user information) after host", true},
		{"https://user:Secret2?x@host/feed", "invalid port (not shown: part of the user information) after host", true},
		{"nats://user:S%zzecret3@host:4222", "(not shown: part of the user information)", true},
		{"nats://user:pass@localhost:4222x", `invalid port ":4222x" after host`, false},
		{"https://host/a%zzb", `invalid URL escape "%zz"`, false},
	} {
		_, err := url.Parse(tc.raw)
		var ue *url.Error
		if !errors.As(err, &ue) {
			t.Fatalf("url.Parse(%q) = %v, want a *url.Error", tc.raw, err)
		}
		got := ParseError(tc.raw, ue.Err).Error()
		if !strings.Contains(got, tc.want) || strings.Contains(got, "ecret") || strings.Contains(got, "%2F") != tc.hidden {
			t.Errorf("ParseError(%q, %q) = %q, want %q (the escaping advice: %v)", tc.raw, ue.Err, got, tc.want, tc.hidden)
		}
	}
}
