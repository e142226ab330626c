package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/pipeline"
)

// rawControls are what a paper's text must never carry to the user's terminal: ESC, which
// starts an escape sequence (OSC 52 writes the clipboard, OSC 0 the window title, CSI 2J
// clears the screen, OSC 8 hides a link), BEL, which ends an OSC one, CSI as a C1 control,
// and the right-to-left override, which reorders what is shown.
const rawControls = "\x1b\x07\u009b\u202e"

// A paper's title, abstract and authors come from whoever wrote the file or posted the paper
// (anyone can put an abstract on arXiv). Ingest keeps their control characters (the paper's id
// and hash are of its text as stored), and `paperpipe show`, `search`, `list` and `related`
// print them as visible escapes (\x1b), never as they are; so does an error quoting a title.
func TestTextOutputCarriesNoTerminalControlSequences(t *testing.T) {
	t.Parallel()
	abstract := strings.Repeat("We study sparse expert routing in large transformer models. ", 3) +
		`\u001b]52;c;ZWNobyBwd25lZA==\u0007 and \u001b[2J more text about routing.`
	f := filepath.Join(t.TempDir(), "evil.jsonl")
	rec := `{"id": "2501.00001", "title": "Routing \u001b]0;PWNED\u0007 experts", "abstract": "` + abstract +
		`", "authors": ["Mallory \u001b[8mhidden\u001b[0m"], "categories": ["cs.LG"]}` + "\n"
	if err := os.WriteFile(f, []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	c.ok("ingest", f)
	c.workUntilIdle()
	var stored struct {
		Title    string   `json:"title"`
		Abstract string   `json:"abstract"`
		Authors  []string `json:"authors"`
	}
	c.json(&stored, "show", "arxiv:2501.00001")
	if stored.Title != "Routing \x1b]0;PWNED\x07 experts" || !strings.Contains(stored.Authors[0], "\x1b[8m") {
		t.Errorf("ingest stored title %q, authors %q; want the text as it came", stored.Title, stored.Authors)
	}

	// More of them, and in every field, as another writer may store them.
	db := dbOf(t, c)
	if _, err := db.Exec(t.Context(), `UPDATE papers SET title = $1, abstract = abstract || $2, authors = $3, categories = $4, url = $5
		WHERE id = 'arxiv:2501.00001'`, "Routing \x1b]0;PWNED\x07 experts \u202eevil", " Then \x1b]52;c;ZWNobyBwd25lZA==\x07 and \u009b2J.",
		[]string{"Mallory \x1b[8mhidden\x1b[0m"}, []string{"cs.LG\x07"}, "https://example.org/\x1b]8;;https://evil.example/\x07x"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(t.Context(), `INSERT INTO papers (id, title, abstract, content_hash) VALUES ($1, 'Routing too', 'An abstract.', 'x')`,
		"id:older\x1b[2J\u202e"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"show", "arxiv:2501.00001"}, {"search", "sparse expert routing"}, {"list"}, {"related", "arxiv:2501.00001"}} {
		out := c.ok(args...).stdout
		if i := strings.IndexAny(out, rawControls); i >= 0 {
			t.Errorf("paperpipe %s printed a raw control character to the terminal: %q", strings.Join(args, " "), out[max(0, i-20):min(len(out), i+30)])
		}
		if !strings.Contains(out, `Routing \x1b]0;PWNED\x07 experts \u202eevil`) {
			t.Errorf("paperpipe %s does not show the title's control characters as escapes:\n%s", strings.Join(args, " "), out)
		}
	}
	if out := c.ok("list").stdout; !strings.Contains(out, `id:older\x1b[2J\u202e`) {
		t.Errorf("paperpipe list does not show the id's control characters as escapes:\n%s", out)
	}
	// An ambiguous title fragment lists the candidates' titles in the error.
	r := c.run("show", "Routing")
	if r.code != 1 || strings.ContainsAny(r.stderr, rawControls) || !strings.Contains(r.stderr, `\x1b]0;PWNED`) {
		t.Errorf("paperpipe show Routing: exit %d, stderr %q; want 1 and the titles' control characters as escapes", r.code, r.stderr)
	}
}

// `paperpipe dlq list` shows a dead letter's paper id and reason (an API's error, a model's
// answer) with their control characters as escapes.
func TestDLQListCarriesNoTerminalControlSequences(t *testing.T) {
	t.Parallel()
	srv, js := queueServer(t)
	m := nats.NewMsg(pipeline.SubjectDead + "." + pipeline.ConsumerNew)
	m.Data = []byte(`{"id":"id:x","title":"T","abstract":"An abstract."}`)
	m.Header.Set(pipeline.HeaderSubject, pipeline.SubjectNew)
	m.Header.Set(pipeline.HeaderPaperID, "id:x\x1b[2J")
	m.Header.Set(pipeline.HeaderReason, "the API said: \x1b]52;c;ZWNobyBwd25lZA==\x07 \u202edone")
	if _, err := js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	out := newCLI(t, "NATS_URL="+srv.ClientURL()).ok("dlq", "list").stdout
	if strings.ContainsAny(out, rawControls) || !strings.Contains(out, `id:x\x1b[2J`) || !strings.Contains(out, `\x1b]52;c;ZWNobyBwd25lZA==\x07 \u202edone`) {
		t.Errorf("dlq list printed %q; want the id's and reason's control characters as escapes", out)
	}
}

// `paperpipe dlq show` prints a letter's id, subject and reason, and `dlq replay` names the
// paper of a letter it cannot replay: each is a header any client of the NATS account may
// write, shown with its control characters as escapes.
func TestDLQShowAndReplayCarryNoTerminalControlSequences(t *testing.T) {
	t.Parallel()
	srv, js := queueServer(t)
	m := nats.NewMsg(pipeline.SubjectDead + "." + pipeline.ConsumerNew)
	m.Header.Set(pipeline.HeaderSubject, pipeline.SubjectNew+"\x1b[2J")
	m.Header.Set(pipeline.HeaderPaperID, "id:x\x1b]0;PWNED\x07")
	m.Header.Set(pipeline.HeaderReason, "the API said: \x1b]52;c;ZWNobyBwd25lZA==\x07 \u202edone")
	m.Header.Set(pipeline.HeaderBodyLeftOut, "1048000") // a letter without its message: not replayed
	ack, err := js.PublishMsg(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	seq := strconv.FormatUint(ack.Sequence, 10)
	c := newCLI(t, "NATS_URL="+srv.ClientURL())
	out := c.ok("dlq", "show", seq).stdout
	if strings.ContainsAny(out, rawControls) || !strings.Contains(out, `id:x\x1b]0;PWNED\x07`) || !strings.Contains(out, `papers.new\x1b[2J`) ||
		!strings.Contains(out, `\x07 \u202edone`) {
		t.Errorf("dlq show printed %q; want the id's, subject's and reason's control characters as escapes", out)
	}
	r := c.run("dlq", "replay", seq)
	if r.code != 1 || strings.ContainsAny(r.stderr, rawControls) || !strings.Contains(r.stderr, `(paper id:x\x1b]0;PWNED\x07) holds no message`) {
		t.Errorf("dlq replay %s: exit %d, stderr %q; want 1, naming the paper with its control characters as escapes", seq, r.code, r.stderr)
	}
}

// import-embeddings and import-tldrs read files from other archives, or from whoever wrote
// them: the lines they skip and the papers they do not know are named by their ids, shown with
// their control characters as escapes.
func TestImportsNameTheLinesTheySkipTerminalSafe(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, tc := range []struct {
		cmd, want string
		lines     []string
	}{
		{"import-embeddings", `id:a\x1b]0;PWNED\x07: no embedding`, []string{
			`{"id":"id:a\u001b]0;PWNED\u0007","embedding":[],"model":"imported"}`,
			`{"id":"id:b\u001b[2J\u202e","embedding":[1,0,0,0],"model":"imported"}`,
		}},
		{"import-tldrs", `id:a\x1b]0;PWNED\x07: no tldr`, []string{
			`{"id":"id:a\u001b]0;PWNED\u0007","tldr":" ","tldr_model":"m","tldr_prompt_version":"v1","content_hash":"h"}`,
		}},
	} {
		r := c.run(tc.cmd, writeLines(t, tc.lines...))
		if strings.ContainsAny(r.stderr, rawControls) || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("paperpipe %s: exit %d, stderr %q; want the ids' control characters as escapes (%s)", tc.cmd, r.code, r.stderr, tc.want)
		}
	}
}

// writeFile writes data to dir/name and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// gzipped returns b gzip-compressed.
func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dbOf connects to c's database, closed with the test.
func dbOf(t *testing.T, c *cli) *pgx.Conn {
	t.Helper()
	db, err := pgx.Connect(t.Context(), c.databaseURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

func TestTermSafe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    string
		lines bool
		want  string
	}{
		{"Plain text, naïve café.", false, "Plain text, naïve café."},
		{"a\tb\nc\r\fd\u2028e", false, "a b c  d e"},
		{"a\tb\nc\rd", true, "a\tb\nc d"},
		{"\x1b]0;t\x07 \x7f \u009b2J", false, `\x1b]0;t\x07 \x7f \u009b2J`},
		{"abc\u202efed \u2066x\u2069 \u202aembedded\u202c", false, `abc\u202efed \u2066x\u2069 \u202aembedded\u202c`},
		// Part of how real text is written, acting on nothing: kept (the Hebrew RLM, the Arabic
		// letter mark, a zero-width space, the word joiner, a flag's tag characters).
		{"soft\u00adhyphen می\u200cخواهم 👩\u200d💻", false, "soft\u00adhyphen می\u200cخواهم 👩\u200d💻"},
		{"מודל שפה\u200f (LLM) \u061cعربي zero\u200bwidth word\u2060joiner 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", false,
			"מודל שפה\u200f (LLM) \u061cعربي zero\u200bwidth word\u2060joiner 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"},
		{"bad \xff\x9b byte", false, "bad \ufffd\ufffd byte"},
	} {
		if got := termSafe(tc.in, tc.lines); got != tc.want {
			t.Errorf("termSafe(%q, %v) = %q, want %q", tc.in, tc.lines, got, tc.want)
		}
	}
}

// --json output holds none of the characters that act on a terminal: encoding/json escapes
// only the C0 controls (and U+2028/U+2029), and left DEL, the C1 controls (U+009B is an 8-bit
// CSI) and the format characters (the bidi override U+202E) as they are; they are \u escapes
// now, which decode to the same text.
func TestJSONOutputEscapesWhatActsOnATerminal(t *testing.T) {
	t.Parallel()
	in := map[string]string{"title": "a\x1bb\x7fc\u009bd\u202ee \U000e0041 naïve 中文"}
	var b bytes.Buffer
	if err := writeJSON(&b, in); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"\x1b", "\x7f", "\u009b", "\u202e", "\U000e0041"} {
		if strings.Contains(b.String(), raw) {
			t.Errorf("--json output %q holds %q unescaped", b.String(), raw)
		}
	}
	var out map[string]string
	if err := json.Unmarshal(b.Bytes(), &out); err != nil || out["title"] != in["title"] {
		t.Errorf("--json output %q decodes to %q (%v), want the text as stored", b.String(), out["title"], err)
	}
}

// A TL;DR's model and prompt version and a space's model and template are paperpipe's names,
// printed as they are (show, tldrs, spaces, the import's own summary). An export comes from
// another archive, or whoever wrote the file: import-tldrs, import-embeddings and import took
// a tldr_model, tldr_prompt_version, model or template holding an escape sequence, stored it,
// and `show` and `tldrs` sent the escape to the terminal (OSC 0 set its title, CSI 2J cleared
// it); `spaces` and the import's summary did for a space. Such a line is bad, said so with its
// file and line, and the others are loaded.
func TestImportRefusesControlCharactersInModelNames(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	c.workUntilIdle()
	lines := exportedLines(t, c, "--vectors")
	if len(lines) < 3 {
		t.Fatalf("%d lines exported, want at least 3", len(lines))
	}
	write := func(name string, ls ...map[string]any) string {
		var b strings.Builder
		for _, l := range ls {
			j, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(j)
			b.WriteByte('\n')
		}
		return writeFile(t, t.TempDir(), name, []byte(b.String()))
	}
	evil := func(l map[string]any, key, value string) map[string]any {
		m := maps.Clone(l)
		m[key] = value
		return m
	}
	tldrs := write("tldrs.jsonl", evil(lines[0], "tldr_model", "m\x1b]0;PWNED\x07"),
		evil(lines[1], "tldr_prompt_version", "v\x1b[2J\u202e"), evil(lines[2], "tldr_model", "other-model"))
	r := c.run("import-tldrs", tldrs)
	if r.code != 1 || !strings.Contains(r.stderr, "tldrs.jsonl:1: ") || !strings.Contains(r.stderr, "tldrs.jsonl:2: ") ||
		!strings.Contains(r.stderr, "1 TL;DR saved") || strings.ContainsAny(r.stderr, rawControls) {
		t.Errorf("import-tldrs of names with escapes: exit %d, stderr %q; want 1, lines 1 and 2 bad (as escapes), 1 saved", r.code, r.stderr)
	}
	var versions []struct {
		Model         string `json:"model"`
		PromptVersion string `json:"prompt_version"`
	}
	c.json(&versions, "tldrs")
	for _, v := range versions {
		if strings.ContainsAny(v.Model+v.PromptVersion, rawControls) {
			t.Errorf("import-tldrs stored the version %q %q", v.Model, v.PromptVersion)
		}
	}
	if out := c.ok("show", lines[0]["id"].(string)).stdout; strings.ContainsAny(out, rawControls) {
		t.Errorf("show printed a raw control character: %q", out)
	}

	for _, key := range []string{"model", "template"} {
		vectors := write("vectors.jsonl", evil(lines[0], key, "x\x1b]0;PWNED\x07"))
		r := c.run("import-embeddings", vectors)
		if r.code != 1 || !strings.Contains(r.stderr, "vectors.jsonl:1: ") || strings.ContainsAny(r.stderr, rawControls) {
			t.Errorf("import-embeddings of a %s with escapes: exit %d, stderr %q; want 1, line 1 bad (as escapes)", key, r.code, r.stderr)
		}
	}
	var spaces []struct {
		Model    string `json:"model"`
		Template string `json:"template"`
	}
	c.json(&spaces, "spaces")
	for _, s := range spaces {
		if strings.ContainsAny(s.Model+s.Template, rawControls) {
			t.Errorf("import-embeddings made the space %q %q", s.Model, s.Template)
		}
	}
	if out := c.ok("spaces").stdout; strings.ContainsAny(out, rawControls) {
		t.Errorf("spaces printed a raw control character: %q", out)
	}

	// import of such an export, into another archive.
	moved := newCLI(t)
	r = moved.run("import", write("export.jsonl", evil(lines[0], "model", "m\x1b]0;PWNED\x07"), evil(lines[1], "tldr_model", "t\x1b[2J"), lines[2]))
	if r.code != 1 || !strings.Contains(r.stderr, "export.jsonl:1: ") || !strings.Contains(r.stderr, "export.jsonl:2: ") || strings.ContainsAny(r.stderr, rawControls) {
		t.Errorf("import of names with escapes: exit %d, stderr %q; want 1, lines 1 and 2 bad (as escapes)", r.code, r.stderr)
	}
	for _, args := range [][]string{{"tldrs"}, {"spaces"}, {"show", lines[0]["id"].(string)}} {
		if out := moved.ok(args...).stdout; strings.ContainsAny(out, rawControls) {
			t.Errorf("after import, %s printed a raw control character: %q", strings.Join(args, " "), out)
		}
	}
}

// `paperpipe status` lists the workers as they announce themselves in the NATS bucket
// paperpipe_workers, which any client of the NATS account may write, and a paused worker's
// "why" is the API's answer (a proxy's error page, a gateway's message), which a worker copies
// as it came but for its white space. They reached the terminal as they were: an escape
// sequence in a host name, a version, a state, a pause's reason or the API's answer acted on
// the terminal of whoever ran status. They are printed as escapes now, as dlq list prints a
// dead letter's reason.
func TestStatusPrintsTheWorkersAnnouncementsTerminalSafe(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, js := queueServer(t)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: pipeline.BucketWorkers, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for key, a := range map[string]pipeline.Announcement{
		"paused": {Host: "host\x1b]0;PWNED\x07", PID: 42, Started: now, Consumer: pipeline.ConsumerNew, State: pipeline.StatePaused,
			Pause:   &pipeline.Pause{Reason: "reason\x1b[2J", Detail: "the API said: \x1b]52;c;ZWNobyBwd25lZA==\x07 \u202edone", Until: now.Add(time.Hour)},
			Version: "v1\u009b2J", Refresh: 10},
		"idle": {Host: "other", PID: 43, Started: now, Consumer: pipeline.ConsumerNew, State: "idle\x1b[8m", Version: "v1", Refresh: 10},
	} {
		raw, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, key, raw); err != nil {
			t.Fatal(err)
		}
	}
	c := newCLI(t, "NATS_URL="+srv.ClientURL())
	out := c.ok("status").stdout
	if i := strings.IndexAny(out, rawControls); i >= 0 {
		t.Errorf("status printed a raw control character to the terminal: %q", out[max(0, i-20):min(len(out), i+30)])
	}
	for _, want := range []string{`host\x1b]0;PWNED\x07`, `reason\x1b[2J`, `\x1b]52;c;ZWNobyBwd25lZA==\x07 \u202edone`, `v1\u009b2J`, `idle\x1b[8m`} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not show %s as escapes:\n%s", want, out)
		}
	}
	if out := c.ok("status", "--json").stdout; strings.ContainsAny(out, rawControls) {
		t.Errorf("status --json printed a raw control character: %q", out)
	}
}

// `paperpipe status` lists a backlog for each consumer of the queue's stream, by its name, and
// one re-processing into a dropped space by the space its description names: any client of
// the NATS account may make a consumer, and a name may hold any character but white space, '.',
// '*' and '>' (nats-server's rule). An escape sequence in either reached the terminal as it
// was, in the backlog's line and in the note that no worker runs it.
func TestStatusPrintsTheConsumersNamesTerminalSafe(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, js := queueServer(t)
	for _, cc := range []jetstream.ConsumerConfig{
		{Durable: "evil\x1b]0;PWNED\x07\u202e", FilterSubject: pipeline.SubjectReprocess + ".evil"},
		{Durable: "reprocess-gone", FilterSubject: pipeline.SubjectReprocess + ".gone", Description: "re-processing: TL;DRs m v, space gone\x1b[2J"},
	} {
		cc.AckPolicy = jetstream.AckExplicitPolicy
		if _, err := js.CreateConsumer(ctx, pipeline.StreamPapers, cc); err != nil {
			t.Fatal(err)
		}
		// A message waits: the note that no worker runs the backlog.
		if _, err := js.Publish(ctx, cc.FilterSubject, []byte(`{"id":"id:x","title":"T","abstract":"An abstract."}`)); err != nil {
			t.Fatal(err)
		}
	}
	c := newCLI(t, "NATS_URL="+srv.ClientURL())
	out := c.ok("status").stdout
	if i := strings.IndexAny(out, rawControls); i >= 0 {
		t.Errorf("status printed a raw control character to the terminal: %q", out[max(0, i-20):min(len(out), i+30)])
	}
	if want := `evil\x1b]0;PWNED\x07\u202e`; strings.Count(out, want) < 2 {
		t.Errorf("status does not show the consumer's name as escapes in its backlog and its note:\n%s", out)
	}
	if want := `space gone\x1b[2J`; !strings.Contains(out, want) {
		t.Errorf("status does not show the dropped space's name as escapes:\n%s", out)
	}
	// `spaces drop ID` of a space gone removes the queues of the spaces that no longer exist,
	// naming them as their consumers' descriptions do.
	r := c.ok("spaces", "drop", "7")
	if strings.ContainsAny(r.stdout+r.stderr, rawControls) || !strings.Contains(r.stderr, `gone\x1b[2J`) {
		t.Errorf("spaces drop 7: stdout %q, stderr %q; want the dropped space's name as escapes", r.stdout, r.stderr)
	}
}
