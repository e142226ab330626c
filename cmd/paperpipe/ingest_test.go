package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
)

// TestRecordTooLargeForTheQueueIsRejectedWithFileAndLine: a JSONL record within ingest's own
// limit (4 MiB plus twice the abstract limit) whose message is over the PAPERS stream's 4 MiB
// MaxMsgSize — a standard nats-server's 1 MB max_payload is lower still — is one rejected
// record, named by file and line with the sizes; the records after it are read and published,
// and the summary is printed. Publishing it failed and ended the ingest, without a file, a
// line or a summary, and the records after it were never read.
func TestRecordTooLargeForTheQueueIsRejectedWithFileAndLine(t *testing.T) {
	t.Parallel()
	authors := make([]string, 200000) // 4.2 MB as a JSONL string, 4.4 MB as the message's list
	for i := range authors {
		authors[i] = fmt.Sprintf("Author Number%06d", i)
	}
	line := func(id string, authors []string) string {
		b, _ := json.Marshal(map[string]any{"id": id, "title": "Paper " + id,
			"abstract": "We study careful input handling in data pipelines. It works well.", "authors": strings.Join(authors, ", ")})
		return string(b) + "\n"
	}
	path := filepath.Join(t.TempDir(), "big.jsonl")
	if err := os.WriteFile(path, []byte(line("2404.00001", nil)+line("2404.00002", authors)+line("2404.00003", nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	r := c.run("ingest", path)
	want := regexp.MustCompile(regexp.QuoteMeta(path+":2: arxiv:2404.00002: ") + `message is \d+ bytes, the queue takes at most 4194304\n`)
	if r.code != 1 || !want.MatchString(r.stderr) || !strings.Contains(r.stderr, "2 read, 2 published, 0 dropped as repeats (same record published within the hour), 1 rejected") {
		t.Errorf("ingest of 3 records, the second too large for the queue: exit %d\n%s\nwant exit 1, %s:2 rejected with the sizes, and the other 2 published",
			r.code, r.stderr, path)
	}
	st := c.workUntilIdle()
	if st.Papers.Papers != 2 {
		t.Errorf("%d papers stored, want the 2 around the one too large", st.Papers.Papers)
	}
}

// TestIngestIntoAFullQueueSaysItOnceWithWhatToDo: a whole archive ingested while the workers
// lag or are down fills the queue (here the NATS server's JetStream storage). ingest stops,
// counts the papers the queue refused in its summary — read, published and refused add up —
// and says once that the queue is full and what to do. It printed one line per message in
// flight ("publish ID: nats: API error: code=503 err_code=10023 description=insufficient
// resources", dozens to hundreds of them), said nothing of a full queue, and the summary's
// "N read, M published" left the papers refused by the last flush unaccounted for.
func TestIngestIntoAFullQueueSaysItOnceWithWhatToDo(t *testing.T) {
	t.Parallel()
	srv := natstest.StartWith(t, func(o *server.Options) { o.JetStreamMaxStore = 256 << 10 })
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, `{"id":"2404.%05d","title":"Paper %d","abstract":"We study careful input handling. %s"}`+"\n",
			i, i, strings.Repeat("It works well. ", 20))
	}
	path := filepath.Join(t.TempDir(), "papers.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, "NATS_URL="+srv.ClientURL())
	r := c.run("ingest", path)
	summary := regexp.MustCompile(`ingest: (\d+) read, (\d+) published, 0 dropped as repeats \(.*\), 0 rejected, (\d+) refused by the queue\n`).
		FindStringSubmatch(r.stderr)
	num := func(s string) int { n, _ := strconv.Atoi(s); return n }
	if r.code != 1 || summary == nil || num(summary[1]) != num(summary[2])+num(summary[3]) ||
		!strings.Contains(r.stderr, "paperpipe ingest: the queue is full: "+summary[3]+" papers refused (the first: publish arxiv:2404.") ||
		!strings.Contains(r.stderr, "run the workers to drain it") || strings.Count(r.stderr, "insufficient resources") != 1 {
		t.Errorf("ingest into a full queue: exit %d\n%.3000s\nwant exit 1, a summary whose read = published + refused, "+
			"and one line saying the queue is full, how many papers it refused and what to do", r.code, r.stderr)
	}
}

// TestASourceThatFailsDoesNotStopTheOthers: `paperpipe ingest a b c` with a source that cannot
// be read to its end (a truncated Hugging Face JSON, whose records cannot be resynchronised)
// and one that does not exist reports each, reads the sources after them, prints the summary
// with the sources that failed, and exits 1. It stopped at the first failure: the sources
// after it were not read, and no summary was printed.
func TestASourceThatFailsDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	abstract := "We study the effect of careful input handling on the robustness of data pipelines. It works."
	hf := filepath.Join(dir, "daily.json")
	truncated := fmt.Sprintf(`[{"paper": {"id": "2402.00001", "title": "HF one", "summary": %q}}, {"paper": {"id": "2402.00002", "title": "HF tw`, abstract)
	missing := filepath.Join(dir, "missing.jsonl")
	after := filepath.Join(dir, "after.jsonl")
	jsonl := fmt.Sprintf(`{"id": "2403.00001", "title": "After one", "abstract": %q}`+"\n"+`{"id": "2403.00002", "title": "After two", "abstract": %q}`+"\n", abstract, abstract)
	if err := os.WriteFile(hf, []byte(truncated), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(after, []byte(jsonl), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	r := c.run("ingest", hf, missing, after)
	if r.code != 1 || !strings.Contains(r.stderr, "3 read, 3 published, 0 dropped as repeats (same record published within the hour), 0 rejected, 2 sources failed\n") ||
		!strings.Contains(r.stderr, "2 sources failed (see the messages above)") {
		t.Errorf("ingest of a truncated file, a missing one and a good one: exit %d\n%s\nwant exit 1, the 3 records read published and 2 sources failed", r.code, r.stderr)
	}
	for _, name := range []string{hf, missing} {
		if !regexp.MustCompile(`(?m)^paperpipe ingest: .*` + regexp.QuoteMeta(name)).MatchString(r.stderr) {
			t.Errorf("stderr does not report the failure of %s:\n%s", name, r.stderr)
		}
	}
	st := c.workUntilIdle()
	if st.Papers.Papers != 3 {
		t.Errorf("%d papers stored, want 3: the one before the truncation and the 2 of the file after the failures", st.Papers.Papers)
	}
}

// TestEmbedOutputOfAnOlderTextIsSkippedByImport: `paperpipe embed` writes with each vector the
// content hash of the text it was made from, and its space, so that `import-embeddings` of
// vectors made from a text the archive has since replaced skips them as stale instead of
// storing them as the current text's (they were: without a hash, a vector is taken as
// current, and related papers and search then served the old text's vector, which reprocess
// never repaired). Vectors of the current text load.
func TestEmbedOutputOfAnOlderTextIsSkippedByImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v1 := paper.Abstract{ID: "arxiv:2405.00001", Title: "Careful input handling", Abstract: "We study careful input handling in data pipelines. It works."}
	v2 := v1
	v2.Abstract = "We revisit input handling in data pipelines and find that care pays off at scale."
	write := func(name string, a paper.Abstract) string {
		path := filepath.Join(dir, name)
		b, _ := json.Marshal(map[string]string{"id": a.ID, "title": a.Title, "abstract": a.Abstract})
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	c := newCLI(t)
	embedded := func(a paper.Abstract, name string) string {
		out := c.ok("embed", write(name+".jsonl", a)).stdout
		var l struct {
			ContentHash string `json:"content_hash"`
			Template    string `json:"template"`
			Dimensions  int    `json:"dimensions"`
		}
		if err := json.Unmarshal([]byte(out), &l); err != nil || l.ContentHash != a.ContentHash() || l.Template != "title-abstract-v1" || l.Dimensions != 768 {
			t.Errorf("embed of %s wrote %+v (%v); want its content hash %s, template title-abstract-v1, 768 dimensions", name, l, err, a.ContentHash())
		}
		path := filepath.Join(dir, name+"-vectors.jsonl")
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	old := embedded(v1, "v1")
	current := embedded(v2, "v2")
	c.ok("ingest", write("v2.jsonl", v2))
	c.ok("worker", "--exit-when-idle")
	if r := c.ok("import-embeddings", old); !strings.Contains(r.stderr, "0 vectors loaded") || !strings.Contains(r.stderr, "1 stale skipped") {
		t.Errorf("import of the vector of the paper's older text: %s\nwant it skipped as stale", r.stderr)
	}
	if r := c.ok("import-embeddings", current); !strings.Contains(r.stderr, "0 stale skipped") {
		t.Errorf("import of the vector of the paper's current text: %s\nwant it loaded", r.stderr)
	}
}

// TestMetadataCorrectionOfAQueuedPaperReachesTheStore: the same paper from two sources in a row —
// a feed without categories (Hugging Face daily papers has none), then a record with its
// categories, authors, date and URL, the title and abstract unchanged — should reach the store,
// which keeps the metadata a later copy brings (store.UpsertPapers). The message id is the
// paper's id and the hash of its title and abstract only, so the second record is dropped by
// NATS as a repeat ("dropped as repeats (same id and text …)") and its metadata never arrives.
func TestMetadataCorrectionOfAQueuedPaperReachesTheStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	abstract := "We study the effect of careful input handling on the robustness of data pipelines. It works well in practice."
	hf := filepath.Join(dir, "daily.json")
	full := filepath.Join(dir, "full.jsonl")
	if err := os.WriteFile(hf, []byte(`[{"paper": {"id": "2405.00001", "title": "Careful Input Handling", "summary": "`+abstract+`"}}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(`{"id": "2405.00001", "title": "Careful Input Handling", "abstract": "`+abstract+
		`", "authors": ["Ada Lovelace"], "categories": ["cs.DB"], "published": "2024-05-01", "url": "https://arxiv.org/abs/2405.00001"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	c.ok("ingest", hf)
	r := c.ok("ingest", full)
	c.workUntilIdle()
	var p paper.Record
	c.json(&p, "show", "arxiv:2405.00001")
	if !slices.Equal(p.Categories, []string{"cs.DB"}) || !slices.Equal(p.Authors, []string{"Ada Lovelace"}) || p.Published.IsZero() {
		t.Errorf("stored paper: categories %q, authors %q, published %v; want the second record's cs.DB, Ada Lovelace, 2024-05-01\nsecond ingest said: %s",
			p.Categories, p.Authors, p.Published, strings.TrimSpace(r.stderr))
	}
}

// TestInterruptedIngestOfStdinStopsAndCountsWhatWasQueued: Ctrl-C stops `ingest -` while it
// waits for more input, and the summary counts the records the queue took — all of them here —
// and ends with "interrupted". The process waited until standard input sent more data (the
// interrupt was seen only between records), and then flushed with the ended context: the
// summary under-counted what was queued at random and ended with "context canceled".
func TestInterruptedIngestOfStdinStopsAndCountsWhatWasQueued(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	c := newCLI(t, "NATS_URL="+srv.ClientURL())
	cmd := exec.Command(binary, "ingest", "-")
	cmd.Env = c.env
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for i := range 3 {
		fmt.Fprintf(stdin, `{"id": "2407.0000%d", "title": "Paper %d", "abstract": "We study careful input handling, part %d."}`+"\n", i, i, i)
	}
	// Ingest reads and publishes them, then waits for more: Ctrl-C once the queue holds them.
	for deadline := time.Now().Add(time.Minute); queued(t, js) < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the queue holds %d of the 3 records a minute after they were written to ingest -\n%s", queued(t, js), stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("ingest - still waiting for input 20 s after SIGINT\n%s", stderr.String())
	}
	out := stderr.String()
	if ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || !strings.Contains(out, "ingest: 3 read, 3 published, 0 dropped as repeats") ||
		!strings.Contains(out, "paperpipe ingest: interrupted\n") || strings.Contains(out, "context canceled") {
		t.Errorf("interrupted ingest: %v\n%s\nwant it ended by the signal, \"3 read, 3 published\" and \"interrupted\" (not \"context canceled\")", cmd.ProcessState, out)
	}
}

// TestAnInterruptedIngestStopsTheScriptItRunsIn: Ctrl-C in a terminal reaches the shell
// running a script and the command it waits for; the shell stops the script only when the
// command died of the SIGINT (bash's "wait and cooperative exit": a command that exits of its
// own accord is taken to have handled it). An interrupted `ingest` exited 1, so
// `for f in *.jsonl; do paperpipe ingest "$f"; done` went on to the next file at every
// Ctrl-C, and a supervisor or a script's `$?` could not tell a stop from a failure. It says
// what it did, then ends by the signal: the shell stops; the status is 130 (143 for SIGTERM).
func TestAnInterruptedIngestStopsTheScriptItRunsIn(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			srv := natstest.Start(t)
			js := srv.Connect(t)
			c := newCLI(t, "NATS_URL="+srv.ClientURL())
			// Ctrl-C: the script, in a process group of its own as a terminal's foreground job
			// is, and the signal to the whole group. SIGTERM (a supervisor's, timeout(1)'s):
			// to ingest alone, whose status its parent reads.
			cmd := exec.Command(bash, "-c", `"$0" ingest -; echo "the next command ran, after status $?"`, binary)
			if sig == syscall.SIGTERM {
				cmd = exec.Command(binary, "ingest", "-")
			}
			cmd.Env = c.env
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			var out lockedBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			fmt.Fprintln(stdin, `{"id": "2407.00001", "title": "Paper 1", "abstract": "We study careful input handling."}`)
			for deadline := time.Now().Add(time.Minute); queued(t, js) < 1; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					t.Fatalf("the queue holds nothing a minute after a record was written to ingest -\n%s", out.String())
				}
			}
			if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil { // Ctrl-C: to the whole group
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
				t.Fatalf("the script still runs 20 s after %v\n%s", sig, out.String())
			}
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if said := out.String(); strings.Contains(said, "the next command ran") || !ws.Signaled() || ws.Signal() != sig ||
				!strings.Contains(said, "ingest: 1 read, 1 published") {
				t.Errorf("script with an ingest stopped by %v: %v\n%s\nwant the script ended by %v, the next command not run, and ingest's summary",
					sig, cmd.ProcessState, said, sig)
			}
		})
	}
}

// queued is the number of messages in js's PAPERS stream: 0 before a command created it.
func queued(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), pipeline.StreamPapers)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestUnreadableInputSaysWhatItIsAndNamesTheCommandRun: summarize and embed, which need no
// database or queue, suggest converting UTF-16 text or a zip archive into themselves, not into
// `paperpipe ingest -`, which would queue the papers for the paid workers instead (exit 1);
// an empty file is a source without papers, said as a warning naming it, exit 0: it was a
// failure (exit 1), which broke a scraper's cron job on a quiet day.
func TestUnreadableInputSaysWhatItIsAndNamesTheCommandRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string { return writeFile(t, dir, name, data) }
	utf16 := write("papers.jsonl", []byte{0xff, 0xfe, '{', 0, '"', 0})
	zipped := write("papers.zip", []byte("PK\x03\x04\x14\x00rest"))
	empty := write("empty.txt", nil)
	c := newCLI(t)
	c.env = append(c.env, "DATABASE_URL=postgres://nobody@127.0.0.1:1/none", "NATS_URL=nats://127.0.0.1:1")
	for _, cmd := range []string{"summarize", "embed"} {
		for path, want := range map[string]string{
			utf16:  "`iconv -f UTF-16 -t UTF-8 " + utf16 + " | paperpipe " + cmd + " -`",
			zipped: "`unzip -p " + zipped + " | paperpipe " + cmd + " -`",
		} {
			r := c.run(cmd, path)
			if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "paperpipe ingest") {
				t.Errorf("%s %s: exit %d, stderr %q; want exit 1 and %q", cmd, filepath.Base(path), r.code, r.stderr, want)
			}
		}
		r := c.run(cmd, empty)
		if want := "paperpipe " + cmd + ": " + empty + ": no papers in it\n"; r.code != 0 || r.stderr != want {
			t.Errorf("%s of an empty file: exit %d, stderr %q; want exit 0 and %q", cmd, r.code, r.stderr, want)
		}
	}
}

// TestIngestOfAPDFIsAFailedSourceAndOfAnEmptyFileAWarning: a PDF (the paper itself, a
// researcher's likeliest wrong file) is refused saying what it is and what ingest reads, a
// failed source (exit 1); an empty file is a source without papers, a warning naming it that
// the summary counts, and alone it leaves the exit status 0: a scraper that writes an empty
// file on a quiet day must not break its cron job (it was a failed source, exit 1). The good
// source after them is read.
func TestIngestOfAPDFIsAFailedSourceAndOfAnEmptyFileAWarning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pdf := filepath.Join(dir, "paper.pdf")
	empty := filepath.Join(dir, "empty.jsonl")
	good := filepath.Join(dir, "good.jsonl")
	for path, data := range map[string]string{
		pdf:   "%PDF-1.5\n%\xe2\xe3\xcf\xd3\n4 0 obj\n<< /Length 5 /Filter /FlateDecode >>\nstream\nx\x9c\xed\x9d\x00\x01endstream\n",
		empty: "",
		good:  `{"id": "2405.00001", "title": "Good", "abstract": "We study careful input handling in data pipelines. It works."}` + "\n",
	} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := newCLI(t)
	r := c.run("ingest", pdf, empty, good)
	if r.code != 1 || !strings.Contains(r.stderr, "1 read, 1 published, 0 dropped as repeats (same record published within the hour), 0 rejected, 1 source without papers, 1 source failed\n") ||
		!strings.Contains(r.stderr, "the input is a PDF document, not text: paperpipe ingest reads papers' titles and abstracts") ||
		!strings.Contains(r.stderr, "paperpipe ingest: "+empty+": no papers in it\n") {
		t.Errorf("ingest of a PDF, an empty file and a good one: exit %d\n%s\nwant exit 1 for the PDF, the empty file named as without papers, the good record published", r.code, r.stderr)
	}
	r = c.run("ingest", empty, good)
	if r.code != 0 || !strings.Contains(r.stderr, "paperpipe ingest: "+empty+": no papers in it\n") ||
		!strings.Contains(r.stderr, ", 0 rejected, 1 source without papers\n") {
		t.Errorf("ingest of an empty file and a good one: exit %d\n%s\nwant exit 0, the empty file named and counted", r.code, r.stderr)
	}
}

// TestCutFileIsNamedOnceWithItsLine: a gzip file cut short stops summarize, embed, ingest and
// import-embeddings with one line naming the file once, with the line where reading stopped:
// it said "read papers.jsonl.gz: reading papers.jsonl.gz at line 1980: …" (a cut Atom feed
// "read feed.xml.gz: feed.xml.gz:12: …"), and import-embeddings gave no line.
func TestCutFileIsNamedOnceWithItsLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	abstract := "We study careful input handling in data pipelines, and find that it pays off at every scale we tried."
	var papers, vectors bytes.Buffer
	for i := range 3000 {
		fmt.Fprintf(&papers, `{"id":"2401.%05d","title":"Paper %d","abstract":%q}`+"\n", i, i, abstract)
		fmt.Fprintf(&vectors, `{"id":"2401.%05d","embedding":[%d,1,0,0],"model":"imported"}`+"\n", i, i)
	}
	cut := func(name string, plain []byte) string {
		gz := gzipped(t, plain)
		return writeFile(t, dir, name, gz[:len(gz)*2/3])
	}
	pp, vp := cut("papers.jsonl.gz", papers.Bytes()), cut("vectors.jsonl.gz", vectors.Bytes())
	c := newCLI(t)
	for _, args := range [][]string{{"summarize", pp}, {"embed", pp}, {"ingest", pp}, {"import-embeddings", vp}} {
		r := c.run(args...)
		path := args[len(args)-1]
		var last string
		for l := range strings.Lines(r.stderr) {
			if strings.Contains(l, "cut short") {
				last = l
			}
		}
		if r.code != 1 || strings.Count(last, path) != 1 || !regexp.MustCompile(regexp.QuoteMeta(path)+`:[1-9][0-9]*: `).MatchString(last) {
			t.Errorf("paperpipe %s of a file cut short: exit %d, the error %q; want exit 1 and %s:LINE: once\n%s", args[0], r.code, last, path, r.stderr)
		}
	}
}

// TestEveryRecordReadBeforeACutIsWrittenOrQueued: of a gzip file cut short, ingest publishes
// and summarize and embed write every record decompressed before the cut, then fail naming the
// file and line. embed left out the records of its last batch not yet full (1986 records
// before the cut, 1792 vectors written: 7 batches of 256), though its error named line 1987 as
// where reading stopped; so did any source that failed, and a missing second file.
func TestEveryRecordReadBeforeACutIsWrittenOrQueued(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	abstract := "We study careful input handling in data pipelines, and find that it pays off at every scale we tried."
	var papers bytes.Buffer
	for i := range 3000 {
		fmt.Fprintf(&papers, `{"id":"2401.%05d","title":"Paper %d","abstract":%q}`+"\n", i, i, abstract)
	}
	gz := gzipped(t, papers.Bytes())
	cut := gz[:len(gz)*2/3]
	zr, err := gzip.NewReader(bytes.NewReader(cut))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr) // what can be decompressed before the cut
	whole := bytes.Count(plain, []byte("\n"))
	if whole%256 == 0 {
		t.Fatalf("%d whole records before the cut: want a last batch of embed's 256 that is not full", whole)
	}
	path := writeFile(t, dir, "papers.jsonl.gz", cut)
	c := newCLI(t)
	at := path + ":" + strconv.Itoa(whole+1) + ": "
	for _, cmd := range []string{"summarize", "embed"} {
		r := c.run(cmd, path)
		if lines := strings.Count(r.stdout, "\n"); r.code != 1 || lines != whole || !strings.Contains(r.stderr, at) {
			t.Errorf("paperpipe %s of a file cut after %d whole records: exit %d, %d lines written, stderr %q; want exit 1, %d lines and the error at %s",
				cmd, whole, r.code, lines, r.stderr, whole, at)
		}
	}
	r := c.run("ingest", path)
	if want := fmt.Sprintf("ingest: %d read, %d published,", whole, whole); r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, at) {
		t.Errorf("paperpipe ingest of a file cut after %d whole records: exit %d\n%s\nwant exit 1, %q and the error at %s", whole, r.code, r.stderr, want, at)
	}
	// A source that fails after a good one: the good one's last batch is written too.
	good := writeFile(t, dir, "good.jsonl", papers.Bytes()[:bytes.IndexByte(papers.Bytes(), '\n')+1])
	r = c.run("embed", good, filepath.Join(dir, "missing.jsonl"))
	if lines := strings.Count(r.stdout, "\n"); r.code != 1 || lines != 1 || !strings.Contains(r.stderr, "missing.jsonl") {
		t.Errorf("paperpipe embed of a good file of one record, then a missing one: exit %d, %d lines written, stderr %q; want exit 1, 1 line and the missing file named",
			r.code, lines, r.stderr)
	}
}

// An ingest whose every record is rejected said "the others were handed to the queue", and
// the reader looked for papers that were never queued: it says none was.
func TestIngestOfOnlyRejectedRecordsSaysNoneWasQueued(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(path, []byte(`{"id": "x1", "title": "", "abstract": "a"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newCLI(t).run("ingest", path)
	if r.code != 1 || !strings.Contains(r.stderr, "1 record rejected (see the messages above); no record was queued") ||
		strings.Contains(r.stderr, "the others") {
		t.Errorf("ingest of one bad record: exit %d\n%s\nwant exit 1 saying no record was queued", r.code, r.stderr)
	}
}

// Standard input can be read once: `ingest - -` read its papers as the first source and then
// warned that the second had none ("stdin: no papers in it"), exit 0, as if the input had
// been empty; so did summarize and embed. It is a usage error, as in `remove`, before
// anything is read or queued.
func TestStandardInputNamedTwiceIsAUsageError(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	in, err := os.ReadFile(sampleFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"ingest", "-", "-"}, {"summarize", "-", "-"}, {"embed", "--format", "text", "-", "-"}} {
		cmd := exec.Command(binary, args...)
		cmd.Env = c.env
		cmd.Stdin = bytes.NewReader(in)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 2 || out.Len() != 0 || !strings.Contains(errb.String(), "standard input (-) can be read once") {
			t.Errorf("%s: exit %d, %d bytes on standard output, stderr %q; want 2 (usage), nothing read", strings.Join(args, " "), code, out.Len(), errb.String())
		}
	}
	if st := c.workUntilIdle(); st.Papers.Papers != 0 {
		t.Errorf("ingest - - queued %d papers; want none", st.Papers.Papers)
	}
}

// TestIngestSaysTheDuplicateWindowInForce: on a NATS server that limits a stream's duplicate
// window below paperpipe's hour (`jetstream { limits { max_duplicate_window: 10m } }`), the
// streams take the server's limit, and a repeat published 10 minutes after its record is
// queued again. ingest's summary said repeats were dropped "within the hour" all the same.
func TestIngestSaysTheDuplicateWindowInForce(t *testing.T) {
	t.Parallel()
	srv := natstest.StartWith(t, func(o *server.Options) { o.JetStreamLimits.Duplicates = 10 * time.Minute })
	c := newCLI(t, "NATS_URL="+srv.ClientURL())
	path := filepath.Join(t.TempDir(), "papers.jsonl")
	if err := os.WriteFile(path, []byte(`{"id":"2404.00001","title":"One","abstract":"We study duplicate windows. It works."}`+"\n"+
		`{"id":"2404.00002","title":"Two","abstract":"We study them again. It works too."}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := c.run("ingest", path); r.code != 0 {
		t.Fatalf("ingest: exit %d\n%s", r.code, r.stderr)
	}
	r := c.run("ingest", path)
	if r.code != 0 || !strings.Contains(r.stderr, "2 read, 0 published, 2 dropped as repeats (same record published within the last 10 minutes), 0 rejected\n") {
		t.Errorf("ingest again on a server whose duplicate window is 10 minutes: exit %d\n%s\nwant the 2 repeats said dropped within the last 10 minutes", r.code, r.stderr)
	}
}

// TestArxivPaceIsKeptInTheDataDirectory: the commands that read sources (`ingest`, `remove
// --from`) keep arXiv's pace — one request every three seconds, its terms ask — in a file of
// PAPERPIPE_DATA shared with the other commands of that directory (ingest.Options.PaceDir), so
// that two commands run together do not ask arXiv more often than that between them. Here
// export.arxiv.org is reached through a proxy of the test's (HTTP_PROXY), which answers a query
// of three papers (one without an abstract: the commands exit 1 for it, which does not matter
// here); each command leaves the pace file behind.
func TestArxivPaceIsKeptInTheDataDirectory(t *testing.T) {
	t.Parallel()
	feed, err := os.ReadFile("../../ingest/testdata/atom.xml")
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Host != "export.arxiv.org" {
			http.Error(w, "not arXiv's API", http.StatusBadGateway)
			return
		}
		asked.Add(1)
		w.Header().Set("Content-Type", "application/atom+xml")
		w.Write(feed)
	}))
	t.Cleanup(proxy.Close)
	c := newCLI(t, "HTTP_PROXY="+proxy.URL)
	var data string
	for _, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "PAPERPIPE_DATA="); ok {
			data = v
		}
	}
	paceFile := filepath.Join(data, "pace-export.arxiv.org")
	const query = "http://export.arxiv.org/api/query?search_query=cat:cs.LG&max_results=3"
	for _, args := range [][]string{{"ingest", query}, {"remove", "--from", query, "--dry-run"}} {
		if err := os.Remove(paceFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		before := asked.Load()
		r := c.run(args...)
		if asked.Load() == before {
			t.Fatalf("%s did not ask the proxy for arXiv's answer; the test proves nothing: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
		if _, err := os.Stat(paceFile); err != nil {
			t.Errorf("%s: arXiv's pace is not kept in the data directory: %v", strings.Join(args, " "), err)
		}
	}
}
