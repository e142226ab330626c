package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// settings are the environment variables paperpipe reads (README, Configuration and the HTTP
// API's table), besides DATABASE_URL, NATS_URL, OPENAI_BASE_URL and OPENAI_API_KEY.
var settings = []string{
	"PAPERPIPE_ACK_WAIT", "PAPERPIPE_API_TOKEN", "PAPERPIPE_API_TOKEN_READS", "PAPERPIPE_BATCH_SIZE",
	"PAPERPIPE_CHAT_MODEL", "PAPERPIPE_CONCURRENCY", "PAPERPIPE_DATA", "PAPERPIPE_EF_SEARCH",
	"PAPERPIPE_EMBED_BATCH_INPUTS", "PAPERPIPE_EMBED_BATCH_TOKENS", "PAPERPIPE_EMBED_DIMENSIONS",
	"PAPERPIPE_EMBED_ENCODING", "PAPERPIPE_EMBED_LINGER", "PAPERPIPE_EMBED_MODEL",
	"PAPERPIPE_EMBED_SEND_DIMENSIONS", "PAPERPIPE_FOLLOW_INTERVAL", "PAPERPIPE_HTTP_ADDR",
	"PAPERPIPE_HTTP_ALLOWED_HOSTS", "PAPERPIPE_HTTP_MAX_BODY_BYTES", "PAPERPIPE_INDEX_BUILD_MEMORY",
	"PAPERPIPE_KEYWORD_RANK_LIMIT", "PAPERPIPE_LOG_LEVEL", "PAPERPIPE_MAX_DELIVER",
	"PAPERPIPE_METRICS_ADDR", "PAPERPIPE_MSG_TIMEOUT", "PAPERPIPE_NATS_CA", "PAPERPIPE_NATS_NKEY",
	"PAPERPIPE_NATS_REPLICAS", "PAPERPIPE_NATS_SYNC", "PAPERPIPE_PRICES", "PAPERPIPE_READ_DATABASE_URL", "PAPERPIPE_RPM",
	"PAPERPIPE_SHUTDOWN_DELAY", "PAPERPIPE_TLDR_MAX_WORDS", "PAPERPIPE_TPM", "PAPERPIPE_VECTOR_INDEX",
}

// otherTools are variables of the same prefix that the repository's scripts and tests read
// (deploy/services.sh, deploy/test-deps.sh, deploy/compose.yaml, the test helpers, the chaos runs), not paperpipe.
var otherTools = []string{
	"PAPERPIPE_ARTIFACTS", "PAPERPIPE_CHAOS", "PAPERPIPE_DEBIAN_MIRROR", "PAPERPIPE_KEEP_TEST_SCHEMA", "PAPERPIPE_NATS_PORT",
	"PAPERPIPE_PG_PORT", "PAPERPIPE_SERVICES", "PAPERPIPE_SERVICES_DIR", "PAPERPIPE_SKIP_TEST_DEPS",
	"PAPERPIPE_TEST_DATABASE_URL",
}

// warnUnknownSettings warns, on w, of each PAPERPIPE_ variable of environ that paperpipe does
// not read: a misspelled setting (PAPERPIPE_CONCURENCY, PAPERPIPE_APITOKEN) is otherwise
// ignored without a word, and its default used — for PAPERPIPE_API_TOKEN, writes left open.
func warnUnknownSettings(w io.Writer, environ []string) {
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "PAPERPIPE_") || slices.Contains(settings, name) || slices.Contains(otherTools, name) {
			continue
		}
		hint := "the README's Configuration lists the settings"
		if near, d := nearest(name, settings); d <= 2 && 2*d < len(name)-len("PAPERPIPE_") {
			hint = "did you mean " + near + "?"
		}
		fmt.Fprintf(w, "paperpipe: warning: %s is not a setting of paperpipe, and is ignored: %s\n", termSafe(name, false), hint)
	}
}

// otherAPINames are the names other tools give the OpenAI-compatible API's base URL (the
// openai Python library before 1.0, LangChain, older Ollama and vLLM guides), which paperpipe
// reads as OPENAI_BASE_URL.
var otherAPINames = []string{"OPENAI_API_BASE", "OPENAI_API_HOST", "OPENAI_BASE"}

// warnOtherAPINames warns, on w, of each variable of environ that names the API's base URL as
// another tool does while OPENAI_BASE_URL is unset: a lab's shell set up for those tools
// would otherwise have paperpipe call OpenAI's own API with its key (or the offline models
// without one), not the server the lab meant.
func warnOtherAPINames(w io.Writer, environ []string) {
	set := map[string]bool{}
	for _, kv := range environ {
		name, v, _ := strings.Cut(kv, "=")
		set[name] = v != ""
	}
	if set["OPENAI_BASE_URL"] {
		return
	}
	for _, name := range otherAPINames {
		if set[name] {
			fmt.Fprintf(w, "paperpipe: warning: %s is set, but paperpipe reads the API's base URL from OPENAI_BASE_URL, which is not: "+
				"set OPENAI_BASE_URL to the same URL to use that server\n", name)
		}
	}
}

// nearest returns the name of names closest to s by edit distance, and the distance.
func nearest(s string, names []string) (string, int) {
	best, bestD := "", -1
	for _, n := range names {
		if d := editDistance(s, n); bestD < 0 || d < bestD {
			best, bestD = n, d
		}
	}
	return best, bestD
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
