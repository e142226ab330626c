package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// richPapers are JSON lines with every field ingest reads: authors, categories, a published
// time, a URL, a paper without an id (stored under its title's), text with a ligature and a
// Unicode space.
const richPapers = `{"id":"2403.00001","title":"Sparse ﬁne-tuning of\u00a0experts","abstract":"We fine-tune only the routed experts of a mixture-of-experts model.","authors":["Ada Lovelace","Alan Turing"],"categories":["cs.LG","cs.CL"],"published":"2024-03-01T12:30:00Z","url":"https://arxiv.org/abs/2403.00001"}
{"title":"A paper without an id","abstract":"Its id is made from its title.","authors":"Grace Hopper and Edsger Dijkstra","categories":"cs.SE","published":"2023-11-05"}
{"id":"doi:10.1000/xyz123","title":"Routing tokens to experts","abstract":"Token routing for mixture of experts, balanced by an auxiliary loss."}
`

// exportedLines runs export with args on c and returns its lines, decoded.
func exportedLines(t *testing.T, c *cli, args ...string) []map[string]any {
	t.Helper()
	r := c.ok(append([]string{"export"}, args...)...)
	return decodeLines(t, r.stdout)
}

func decodeLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func readGzipLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s is not gzip: %v", path, err)
	}
	var b strings.Builder
	if _, err := bufio.NewReader(zr).WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return decodeLines(t, b.String())
}

// TestExportRoundTripsThroughIngestAndImportEmbeddings moves an archive made with a paid API
// into a fresh one: ingest of the export stores the same papers (ids, content hashes,
// metadata), import-embeddings loads their vectors with no API call, and related papers and
// searches rank in the new archive as in the old.
func TestExportRoundTripsThroughIngestAndImportEmbeddings(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{APIKey: "sk-test-secret"})
	apiEnv := []string{"OPENAI_BASE_URL=" + api.URL(), "OPENAI_API_KEY=sk-test-secret"}
	old := newCLI(t, apiEnv...)
	dir := t.TempDir()
	rich := filepath.Join(dir, "rich.jsonl")
	if err := os.WriteFile(rich, []byte(richPapers), 0o644); err != nil {
		t.Fatal(err)
	}
	old.ok("ingest", sampleFile, rich)
	if st := old.workUntilIdle(); st.Papers.Papers != 111 || st.Papers.WithEmbedding != 111 || st.Papers.WithTLDR != 111 {
		t.Fatalf("old archive: %+v, want 111 papers with TL;DRs and vectors", st.Papers)
	}
	file := filepath.Join(dir, "archive.jsonl.gz")
	r := old.ok("export", "-o", file, "--vectors")
	if !strings.Contains(r.stderr, "export: 111 papers to "+file+", 111 with a TL;DR of gpt-4o-mini tldr-v1, 111 with a vector of space") {
		t.Errorf("export said: %s", r.stderr)
	}
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Errorf("the export's partial file is left: %v", err)
	}
	lines := readGzipLines(t, file)
	if len(lines) != 111 {
		t.Fatalf("%d lines exported, want 111", len(lines))
	}
	for _, l := range lines {
		if l["tldr"] == "" || l["tldr_model"] != "gpt-4o-mini" || l["model"] != "text-embedding-3-small" || l["embedding"] == nil || l["content_hash"] == "" {
			t.Fatalf("line lacks its TL;DR or vector: %v", l)
		}
	}
	paid := api.Stats()

	// A fresh archive, with the offline models: no API is configured at all.
	moved := newCLI(t)
	moved.ok("ingest", file)
	if st := moved.workUntilIdle(); st.Papers.Papers != 111 {
		t.Fatalf("moved archive: %d papers, want 111", st.Papers.Papers)
	}
	// The same papers: ids, text (content hashes) and metadata.
	paperOf := func(l map[string]any) map[string]any {
		m := map[string]any{}
		for _, k := range []string{"id", "title", "abstract", "authors", "categories", "published", "url", "content_hash"} {
			m[k] = l[k]
		}
		return m
	}
	before, after := exportedLines(t, old, "--tldr", "none"), exportedLines(t, moved, "--tldr", "none")
	if len(before) != len(after) {
		t.Fatalf("moved archive exports %d papers, the old one %d", len(after), len(before))
	}
	for i := range before {
		if b, a := paperOf(before[i]), paperOf(after[i]); !reflect.DeepEqual(b, a) {
			t.Errorf("paper %d: moved as\n%v\nwas\n%v", i, a, b)
		}
	}

	// The vectors, with no API call.
	r = moved.ok("import-embeddings", file)
	if !strings.Contains(r.stderr, "111 vectors loaded into space") {
		t.Errorf("import-embeddings said: %s", r.stderr)
	}
	if s := api.Stats(); s.EmbedRequests != paid.EmbedRequests || s.ChatRequests != paid.ChatRequests {
		t.Errorf("the move made API calls: embeddings %d→%d, chat %d→%d", paid.EmbedRequests, s.EmbedRequests, paid.ChatRequests, s.ChatRequests)
	}
	moved.ok("activate", "text-embedding-3-small/1536/title-abstract-v1")

	// The TL;DRs, with no API call: the moved archive, once configured as the old one, has
	// those it paid for, and nothing is left to buy.
	r = moved.ok("import-tldrs", file)
	if !strings.Contains(r.stderr, "111 TL;DRs saved, 0 skipped") {
		t.Errorf("import-tldrs said: %s", r.stderr)
	}
	configured := &cli{t: t, env: append(append([]string(nil), moved.env...), apiEnv...)}
	tldrOf := func(l map[string]any) [3]any { return [3]any{l["tldr"], l["tldr_model"], l["tldr_prompt_version"]} }
	oldT, movedT := exportedLines(t, old), exportedLines(t, configured)
	for i := range oldT {
		if tldrOf(oldT[i]) != tldrOf(movedT[i]) || movedT[i]["tldr"] == nil {
			t.Errorf("%v: TL;DR moved as %v, was %v", oldT[i]["id"], tldrOf(movedT[i]), tldrOf(oldT[i]))
		}
	}
	var st statusJSON
	configured.json(&st, "status")
	if st.Papers.WithTLDR != 111 || st.Papers.WithEmbedding != 111 {
		t.Errorf("moved archive, configured as the old one: %+v, want every paper with its TL;DR and vector", st.Papers)
	}

	// Related papers and a search rank as they did.
	type hits struct {
		Related []struct {
			ID    string
			Score float64
		}
		Results []struct {
			ID    string
			Score float64
		}
	}
	var relOld, relMoved hits
	old.json(&relOld, "related", "Implementing Load Balancing Loss", "-k", "10")
	moved.json(&relMoved, "related", "Implementing Load Balancing Loss", "-k", "10")
	if len(relOld.Related) != 10 || !reflect.DeepEqual(relOld.Related, relMoved.Related) {
		t.Errorf("related papers in the moved archive:\n%v\nin the old one:\n%v", relMoved.Related, relOld.Related)
	}
	searcher := configured
	var srOld, srMoved hits
	old.json(&srOld, "search", "mixture of experts routing and load balancing", "-k", "10")
	searcher.json(&srMoved, "search", "mixture of experts routing and load balancing", "-k", "10")
	if len(srOld.Results) != 10 || !reflect.DeepEqual(srOld.Results, srMoved.Results) {
		t.Errorf("search in the moved archive:\n%v\nin the old one:\n%v", srMoved.Results, srOld.Results)
	}
}

// An export to a file is whole or not there: interrupted (here before its first paper, as
// Ctrl-C, a lost database or a full disk stop it anywhere), it leaves neither a file cut short
// under the name asked for nor its partial file, an older file of that name is kept as it
// was, and the error says so.
func TestAnInterruptedExportLeavesNoFileCutShort(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 20)
	file := filepath.Join(t.TempDir(), "papers.jsonl")
	if err := os.WriteFile(file, []byte("yesterday's export\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var errw bytes.Buffer
	_, err := runExport(ctx, e.st, exportOptions{out: file}, &errw)
	if err == nil || !strings.Contains(err.Error(), "interrupted after 0 papers") || !strings.Contains(err.Error(), file+" was not written") {
		t.Fatalf("interrupted export: %v, want it said interrupted and the file not written", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "yesterday's export\n" {
		t.Errorf("the file of that name: %q, %v; want it as it was", b, err)
	}
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Errorf("the partial file is left: %v", err)
	}

	// Not interrupted, it replaces the older file.
	if _, err := runExport(t.Context(), e.st, exportOptions{out: file}, &errw); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); len(decodeLines(t, string(b))) != 20 {
		t.Errorf("the export wrote %q, want 20 papers", b)
	}
}

// -o over an existing file keeps its mode, and over a symbolic link writes the file the link
// leads to, as cp does (the link stays, and a link whose target is missing is refused): the
// export wrote FILE.partial and renamed it over FILE, so a private 0600 export became 0644
// under umask 022, and a link (papers.jsonl -> /data/papers.jsonl) was replaced by a plain
// file, its target left as it was.
func TestExportOverAFileKeepsItsModeAndWritesThroughALink(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	dir := t.TempDir()
	file := filepath.Join(dir, "papers.jsonl")
	if err := os.WriteFile(file, []byte("yesterday's export\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	if _, err := runExport(t.Context(), e.st, exportOptions{out: file}, &errw); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export over a 0600 file: %v, %v; want the file 0600 still", fi.Mode(), err)
	}

	target := filepath.Join(dir, "store", "papers.jsonl")
	if err := os.Mkdir(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("yesterday's export\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := runExport(t.Context(), e.st, exportOptions{out: link}, &errw); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("export -o a symbolic link: %v, %v; want the link kept", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(target); len(decodeLines(t, string(b))) != 3 {
		t.Errorf("the link's target holds %q, want the 3 papers exported", b)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("the link's target: %v, %v; want it 0640 still", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(target)); len(entries) != 1 {
		t.Errorf("beside the link's target: %v, want the target alone (no partial file left)", entries)
	}

	dangling := filepath.Join(dir, "dangling.jsonl")
	if err := os.Symlink(filepath.Join(dir, "missing", "papers.jsonl"), dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := runExport(t.Context(), e.st, exportOptions{out: dangling}, &errw); err == nil {
		t.Error("export -o a link to a missing file: no error, want a refusal")
	}
	if fi, err := os.Lstat(dangling); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("export -o a link to a missing file: %v, %v; want the link kept", fi.Mode(), err)
	}
}

// Output that cannot be written is an error, exit 1, as the other commands' (standard output
// or -o on a full disk: /dev/full, which -o writes as it is, making no file beside it); a
// reader that stops reading (`| head -1`) ends the export quietly, as it does other Unix tools.
func TestExportToAFullDiskFailsAndToAClosedPipeStopsQuietly(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	if full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0); err == nil {
		r := c.runWithStdout(full, "export", "--vectors")
		full.Close()
		if r.code != 1 || !strings.Contains(r.stderr, "no space left on device") {
			t.Errorf("export > /dev/full: exit %d, stderr %q; want 1 and the failed write", r.code, r.stderr)
		}
		r = c.run("export", "-o", "/dev/full")
		if r.code != 1 || !strings.Contains(r.stderr, "write /dev/full: ") || !strings.Contains(r.stderr, "no space left on device") {
			t.Errorf("export -o /dev/full: exit %d, stderr %q; want 1 and the failed write", r.code, r.stderr)
		}
		if _, err := os.Stat("/dev/full.partial"); !os.IsNotExist(err) {
			os.Remove("/dev/full.partial")
			t.Errorf("export -o /dev/full made /dev/full.partial")
		}
	}
	// 108 papers with 768-value vectors are ~900 KB, far more than a pipe holds.
	cmd := exec.Command(binary, "export", "--vectors")
	cmd.Env = c.env
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(first, `{"id":`) {
		t.Fatalf("first line %q, %v", first, err)
	}
	out.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGPIPE) {
		t.Errorf("export | head -1: %v, want a quiet end by SIGPIPE", err)
	}
	if errb.Len() > 0 {
		t.Errorf("export | head -1 said %q, want nothing", errb.String())
	}
}

// import-embeddings reads an export: the papers without a vector in the exported space are
// counted, not bad lines; the lines of an export without vectors are bad, as a file of papers'.
func TestImportEmbeddingsOfAnExportCountsThePapersWithoutAVector(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 4)
	ctx := t.Context()
	sp, err := e.st.EnsureSpace(ctx, paper.Space{Model: "imported", Dimensions: 3, Template: embed.TemplateTitleAbstract})
	if err != nil {
		t.Fatal(err)
	}
	var embs []paper.Embedding
	for i := range 3 { // the fourth paper has no vector
		p, err := e.st.Paper(ctx, fmt.Sprintf("arxiv:2401.%05d", i))
		if err != nil {
			t.Fatal(err)
		}
		embs = append(embs, paper.Embedding{PaperID: p.ID, Vector: []float32{float32(i + 1), 1, 0}, ContentHash: p.ContentHash})
	}
	if _, err := e.st.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	with, without := filepath.Join(dir, "with.jsonl"), filepath.Join(dir, "without.jsonl.gz")
	var errw bytes.Buffer
	if _, err := runExport(ctx, e.st, exportOptions{out: with, vectors: true, space: strconv.FormatInt(sp.ID, 10)}, &errw); err != nil {
		t.Fatal(err)
	}
	errw.Reset()
	if _, err := runExport(ctx, e.st, exportOptions{out: without, tldr: store.TLDRKeep{Model: "gpt-4o-mini", PromptVersion: "tldr-v1"}}, &errw); err != nil {
		t.Fatal(err)
	}
	// No TL;DR of the model asked for: the summary says where to find those stored.
	if !strings.Contains(errw.String(), "0 with a TL;DR of gpt-4o-mini tldr-v1 (paperpipe tldrs lists the versions stored") {
		t.Errorf("export said: %s", errw.String())
	}
	// Into a fresh archive with the same papers.
	moved := newArchiveEnv(t, openaitest.Config{})
	moved.seed(t, 4)
	errw.Reset()
	res, err := importEmbeddings(ctx, moved.st, with, 5000, &errw)
	if err != nil || res.Loaded != 3 || res.Bad != 0 || res.NoVector != 1 {
		t.Fatalf("import of an export with 3 vectors of 4 papers: %+v, %v\n%s", res, err, errw.String())
	}
	if !strings.Contains(errw.String(), "3 vectors loaded into space") || !strings.Contains(errw.String(), "1 paper without a vector") {
		t.Errorf("import said: %s", errw.String())
	}
	errw.Reset()
	// An export without vectors is not a file of vectors: its lines are bad, as a file of
	// papers' are.
	res, err = importEmbeddings(ctx, moved.st, without, 5000, &errw)
	if err != nil || res.Loaded != 0 || res.Bad != 4 || !strings.Contains(errw.String(), "arxiv:2401.00000: no embedding") {
		t.Errorf("import of an export without vectors: %+v, %v; want its 4 lines bad, no embedding\n%s", res, err, errw.String())
	}
}

// import-tldrs loads a TL;DR only for a paper stored with the text it was made from: one whose
// text differs in the archive, or that is not there, is skipped and counted.
func TestImportTLDRsSkipsThePapersStoredWithAnotherText(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 4)
	ctx := t.Context()
	file := exportPaidTLDRs(t, e, 4, func(id string) string { return "Paid TL;DR " + id }, paper.ValidRetried)
	var errw bytes.Buffer
	moved := newArchiveEnv(t, openaitest.Config{})
	moved.seed(t, 3) // the fourth paper is not there
	p, err := moved.st.Paper(ctx, "arxiv:2401.00001")
	if err != nil {
		t.Fatal(err)
	}
	p.Abstract.Abstract += " Revised." // nor is the second one's text
	if _, err := moved.st.UpsertPapers(ctx, []paper.Abstract{p.Abstract}, store.Work{}); err != nil {
		t.Fatal(err)
	}
	errw.Reset()
	res, err := importTLDRs(ctx, moved.st, file, 1000, &errw)
	if err != nil || res.Saved != 2 || res.Skipped != 2 || res.Bad != 0 {
		t.Fatalf("import-tldrs: %+v, %v; want 2 saved, 2 skipped\n%s", res, err, errw.String())
	}
	for i, want := range []bool{true, false, true, false} {
		got, err := moved.st.Summaries(ctx, fmt.Sprintf("arxiv:2401.%05d", i))
		if err != nil && i != 3 {
			t.Fatal(err)
		}
		has := len(got) == 1 && got[0].Text == fmt.Sprintf("Paid TL;DR arxiv:2401.%05d", i) && got[0].Model == "gpt-4o" &&
			got[0].PromptVersion == "tldr-v1" && got[0].Validation == paper.ValidRetried
		if has != want {
			t.Errorf("paper %d: TL;DRs %+v, want the exported one: %v", i, got, want)
		}
	}
}

// -o /dev/stdout with standard output redirected to a file (`paperpipe export -o /dev/stdout >
// papers.jsonl`), or /dev/fd/N, names a file descriptor the process holds: /dev/stdout is a link
// to /proc/self/fd/1, which leads to the regular file the shell opened. It is written as it is,
// as README says, not taken for a file to make whole beside it: a partial file made in /proc
// fails, and one made beside the link (in /dev, as root) is renamed over the link, leaving the
// redirected file empty. Here the file is one of the test's descriptors, named as /proc/self/fd/N
// and through a link to that name, as /dev/stdout is.
func TestExportToAFileDescriptorsNameWritesThatFile(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 20)
	dir := t.TempDir()
	for _, viaLink := range []bool{false, true} {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("redirected-%v.jsonl", viaLink)))
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		if viaLink {
			link := filepath.Join(dir, "stdout")
			if err := os.Symlink(name, link); err != nil {
				t.Fatal(err)
			}
			name = link
		}
		var errw bytes.Buffer
		_, err = runExport(t.Context(), e.st, exportOptions{out: name}, &errw)
		b, rerr := os.ReadFile(f.Name())
		f.Close()
		if err != nil || rerr != nil || len(decodeLines(t, string(b))) != 20 {
			t.Errorf("export -o %s: %v; the file it leads to holds %d bytes (%v), want the 20 papers", name, err, len(b), rerr)
		}
		if viaLink {
			if fi, err := os.Lstat(name); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("export -o %s replaced the link by a file: %v, %v", name, fi.Mode(), err)
			}
		}
	}
	// A file in /dev that is no descriptor's name (in /dev/shm) is a file like another:
	// replaced whole, not written at its end.
	shm, err := os.MkdirTemp("/dev/shm", "export-test-")
	if err != nil {
		return // no /dev/shm here
	}
	defer os.RemoveAll(shm)
	file := filepath.Join(shm, "papers.jsonl")
	for range 2 {
		var errw bytes.Buffer
		if _, err := runExport(t.Context(), e.st, exportOptions{out: file}, &errw); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || len(decodeLines(t, string(b))) != 20 {
		t.Errorf("export -o %s twice: %d bytes (%v), want the 20 papers once", file, len(b), err)
	}
}

// import-tldrs given another file — the vectors `paperpipe embed` writes, a spreadsheet —
// stops after its first 100 bad lines, as ingest and import-embeddings do, giving the first
// line's reason, instead of reading the file to its end with a message for each of its lines.
// Bad lines after a good one are a damaged export: each is reported.
func TestImportTLDRsOfAnotherFileStopsAfterItsFirstBadLines(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	dir := t.TempDir()
	var vectors, csv strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&vectors, `{"id":"2401.%05d","embedding":[1,0,0],"model":"imported","content_hash":"h"}`+"\n", i%2)
		fmt.Fprintf(&csv, "2401.%05d,1,0,0\n", i%2)
	}
	for _, c := range []struct{ name, data, want string }{
		{"vectors.jsonl", vectors.String(), "the first 100 lines are all bad (the first, line 1: arxiv:2401.00000: no tldr); stopped, nothing was loaded"},
		{"vectors.csv", csv.String(), "the first 100 lines are all bad (the first, line 1: not a line of paperpipe export"},
	} {
		path := filepath.Join(dir, c.name)
		if err := os.WriteFile(path, []byte(c.data), 0o644); err != nil {
			t.Fatal(err)
		}
		var errw bytes.Buffer
		res, err := importTLDRs(t.Context(), e.st, path, 1000, &errw)
		if err == nil || !strings.Contains(err.Error(), c.want) || res.Bad != 100 || strings.Count(errw.String(), "\n") != 100 {
			t.Errorf("import-tldrs of 20,000 lines of %s: %v, %d bad, %d lines of messages; want it stopped after 100 saying %q",
				c.name, err, res.Bad, strings.Count(errw.String(), "\n"), c.want)
		}
	}
	p, err := e.st.Paper(t.Context(), "arxiv:2401.00000")
	if err != nil {
		t.Fatal(err)
	}
	good := fmt.Sprintf(`{"id":"2401.00000","title":"T","content_hash":%q,"tldr":"Paid.","tldr_model":"gpt-4o","tldr_prompt_version":"tldr-v1"}`+"\n", p.ContentHash)
	damaged := filepath.Join(dir, "damaged.jsonl")
	if err := os.WriteFile(damaged, []byte(good+strings.Repeat(`{"id":"2401.00001","tldr":"x"}`+"\n", 150)), 0o644); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	if res, err := importTLDRs(t.Context(), e.st, damaged, 1000, &errw); err != nil || res.Bad != 150 || res.Saved != 1 {
		t.Errorf("import-tldrs of 1 good line and 150 bad ones: %+v, %v; want the 150 reported and the 1 saved", res, err)
	}
}

// import-tldrs waits for a paper row another session holds locked (a transaction left open in
// psql) as import-embeddings does, saying which paper, and saves the chunk once the lock is
// gone; it stopped at the store's RowLockTimeout (5 s), the chunk's other TL;DRs unsaved.
func TestImportTLDRsWaitsForALockedPaper(t *testing.T) {
	// Not parallel: it sets importLockedWait.
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{URL: e.c.DatabaseURL, RowLockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var lines []string
	for i := range 3 {
		p, err := e.st.Paper(ctx, fmt.Sprintf("arxiv:2401.%05d", i))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf(`{"id":%q,"title":"T","content_hash":%q,"tldr":"Paid %d.","tldr_model":"gpt-4o","tldr_prompt_version":"tldr-v1"}`, p.ID, p.ContentHash, i))
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	holder, err := e.st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := holder.Exec(ctx, `SELECT FROM papers WHERE id = 'arxiv:2401.00001' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	old := importLockedWait
	defer func() { importLockedWait = old }()
	importLockedWait.tries, importLockedWait.pause = 1<<20, 10*time.Millisecond
	type result struct {
		res importTLDRsResult
		err error
	}
	done := make(chan result, 1)
	var errw lockedBuffer
	go func() {
		res, err := importTLDRs(ctx, st, file, 1000, &errw)
		done <- result{res, err}
	}()
	for !strings.Contains(errw.String(), file+":1-3: waiting for paper arxiv:2401.00001, which another session holds locked") {
		select {
		case r := <-done:
			t.Fatalf("import-tldrs of a locked paper's TL;DR ended without waiting for it: %+v, %v\n%s", r.res, r.err, errw.String())
		case <-time.After(30 * time.Second):
			t.Fatalf("import-tldrs does not say what it waits for:\n%s", errw.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.res.Saved != 3 {
			t.Errorf("import-tldrs once the lock was gone: %+v, %v; want 3 saved\n%s", r.res, r.err, errw.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("import-tldrs still waits after the lock was released")
	}
}

// import-tldrs holds a TL;DR from a file to the rules the summarizer holds every TL;DR it
// stores to (summarize.Validate, at the word limit of its prompt version): one that breaks
// them is cleaned as the summarizer cleans an answer and stored marked "cleaned", or refused
// when cleaning cannot save it; a validation outcome paperpipe does not write is refused. The
// web and the API show a stored TL;DR as it is.
func TestImportTLDRsHoldsTheirTextToTheSummarizersRules(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 5)
	ctx := t.Context()
	long := strings.Repeat("routing ", 80) + "works."
	lines := []struct{ tldr, validation string }{
		{"Balanced routers lower the load-balancing loss of sparse experts.", "retried"}, // valid: kept as it is
		{long, "ok"}, // 81 words under tldr-v1's 30
		{"Sure! Here's the TL;DR:\n\n**Balanced routers** lower the loss.\x1b]52;c;cm0gLXJmIH4=\x07", "ok"}, // chatter, markdown, an escape sequence
		{"Balanced routers lower the loss.", "trust me"},                                                    // no outcome paperpipe writes
		{"—", "ok"}, // nothing cleaning can save
	}
	var b strings.Builder
	for i, l := range lines {
		p, err := e.st.Paper(ctx, fmt.Sprintf("arxiv:2401.%05d", i))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{"id": p.ID, "title": p.Title, "abstract": p.Abstract.Abstract, "content_hash": p.ContentHash,
			"tldr": l.tldr, "tldr_model": "gpt-4o", "tldr_prompt_version": "tldr-v1", "tldr_validation": l.validation}
		j, _ := json.Marshal(m)
		b.Write(append(j, '\n'))
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	res, err := importTLDRs(ctx, e.st, file, 1000, &errw)
	if err != nil || res.Saved != 3 || res.Bad != 2 {
		t.Errorf("import-tldrs: %+v, %v; want 3 saved, 2 bad\n%s", res, err, errw.String())
	}
	for i, l := range lines {
		got, err := e.st.Summaries(ctx, fmt.Sprintf("arxiv:2401.%05d", i))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i == 0:
			if len(got) != 1 || got[0].Text != l.tldr || got[0].Validation != paper.ValidRetried {
				t.Errorf("a valid TL;DR was stored as %+v, want it as it was", got)
			}
		case i >= 3:
			if len(got) != 0 {
				t.Errorf("line %d (%q, %q) was stored: %+v", i+1, l.tldr, l.validation, got)
			}
		default:
			if len(got) != 1 {
				t.Errorf("line %d: %d TL;DRs stored, want the cleaned one", i+1, len(got))
				continue
			}
			if verr := summarize.Validate(got[0].Text, "", summarize.DefaultMaxWords); verr != nil || got[0].Validation != paper.ValidCleaned {
				t.Errorf("line %d: stored %q (%s), which the summarizer would not store: %v", i+1, got[0].Text, got[0].Validation, verr)
			}
		}
	}
	for _, want := range []string{"export.jsonl:4: arxiv:2401.00003: tldr_validation \"trust me\"", "export.jsonl:5: arxiv:2401.00004: "} {
		if !strings.Contains(errw.String(), want) {
			t.Errorf("import-tldrs said:\n%s\nwant %q", errw.String(), want)
		}
	}
}

// paperpipe import moves an archive in one step that buys nothing: the export's papers are
// stored as ingest stores them, without the queue, with their TL;DRs and vectors. A new
// archive configured with the old one's models, whose worker runs throughout, makes no API
// request, and status counts every paper with its TL;DR and vector.
func TestImportMovesAnArchiveWithoutBuyingAnything(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{APIKey: "sk-test-secret"})
	apiEnv := []string{"OPENAI_BASE_URL=" + api.URL(), "OPENAI_API_KEY=sk-test-secret"}
	old := newCLI(t, apiEnv...)
	old.ok("ingest", sampleFile)
	if st := old.workUntilIdle(); st.Papers.WithTLDR != 108 || st.Papers.WithEmbedding != 108 {
		t.Fatalf("old archive: %+v, want 108 papers with TL;DRs and vectors", st.Papers)
	}
	file := filepath.Join(t.TempDir(), "archive.jsonl.gz")
	old.ok("export", "-o", file, "--vectors")
	paid := api.Stats()

	moved := newCLI(t, apiEnv...)
	up := exec.Command(binary, "up", "--http", "")
	up.Env = moved.env
	var logs lockedBuffer
	up.Stderr = &logs
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- up.Wait() }()
	r := moved.ok("import", file)
	_ = up.Process.Signal(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Errorf("up: %v\n%s", err, logs.String())
	}
	for _, want := range []string{"108 papers stored", "108 TL;DRs saved", "108 vectors loaded into space"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("import said:\n%s\nwant %q", r.stderr, want)
		}
	}
	if s := api.Stats(); s.EmbedRequests != paid.EmbedRequests || s.ChatRequests != paid.ChatRequests {
		t.Errorf("the move made API requests: embeddings %d→%d, chat %d→%d", paid.EmbedRequests, s.EmbedRequests, paid.ChatRequests, s.ChatRequests)
	}
	st := moved.workUntilIdle()
	if st.Papers.Papers != 108 || st.Papers.WithTLDR != 108 || st.Papers.WithEmbedding != 108 {
		t.Errorf("moved archive: %+v, want 108 papers, each with its TL;DR and vector", st.Papers)
	}
	if s := api.Stats(); s.EmbedRequests != paid.EmbedRequests || s.ChatRequests != paid.ChatRequests {
		t.Errorf("a worker after the move made API requests: embeddings %d→%d, chat %d→%d", paid.EmbedRequests, s.EmbedRequests, paid.ChatRequests, s.ChatRequests)
	}
	// The same papers, TL;DRs and vectors.
	before, after := exportedLines(t, old, "--vectors"), exportedLines(t, moved, "--vectors")
	if len(before) != 108 || len(after) != 108 {
		t.Fatalf("exported %d papers from the old archive, %d from the new", len(before), len(after))
	}
	for i := range before {
		for _, k := range []string{"id", "title", "abstract", "content_hash", "tldr", "tldr_model", "tldr_prompt_version", "embedding", "model", "source"} {
			if !reflect.DeepEqual(before[i][k], after[i][k]) {
				t.Errorf("paper %v: %s moved as %v, was %v", before[i]["id"], k, after[i][k], before[i][k])
			}
		}
	}
}

// import stores a paper as a worker stores a message's text, dated by the export's updated_at:
// one removed from the new archive after that stays removed, and one the new archive holds
// with a newer text keeps it, the export's TL;DR of the older text skipped.
func TestImportRespectsRemovalsAndNewerText(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	file := exportPaidTLDRs(t, e, 3, func(id string) string { return "Balanced routers lower the loss." }, paper.ValidOK)
	var errw bytes.Buffer
	moved := newArchiveEnv(t, openaitest.Config{})
	moved.seed(t, 2)
	if _, err := moved.st.RemovePapers(ctx, []string{"arxiv:2401.00000"}, false, nil); err != nil {
		t.Fatal(err)
	}
	p, err := moved.st.Paper(ctx, "arxiv:2401.00001")
	if err != nil {
		t.Fatal(err)
	}
	p.Abstract.Abstract += " Revised."
	if _, err := moved.st.UpsertPapers(ctx, []paper.Abstract{p.Abstract}, store.Work{}); err != nil {
		t.Fatal(err)
	}
	errw.Reset()
	res, err := runImport(ctx, moved.st, file, &errw)
	if err != nil || res.Papers.Stored != 2 || res.Papers.Removed != 1 || res.TLDRs.Saved != 1 {
		t.Fatalf("import: %+v, %v; want 2 papers stored, 1 removed, 1 TL;DR saved\n%s", res, err, errw.String())
	}
	// Of the two, one was held already (with its newer text), and the summary says so.
	if res.Papers.New != 1 || !strings.Contains(errw.String(), "2 papers stored (1 of them new here, the others held already)") {
		t.Errorf("import: %d new; said\n%s\nwant 1 of the 2 papers stored new here, and said", res.Papers.New, errw.String())
	}
	// Imported again, nothing is new.
	errw.Reset()
	if res, err := runImport(ctx, moved.st, file, &errw); err != nil || res.Papers.New != 0 ||
		!strings.Contains(errw.String(), "(0 of them new here, the others held already)") {
		t.Errorf("import again: %+v, %v; said\n%s\nwant no paper new here, and said", res, err, errw.String())
	}
	if _, err := moved.st.Paper(ctx, "arxiv:2401.00000"); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("the removed paper: %v, want it not found", err)
	}
	if got, err := moved.st.Paper(ctx, "arxiv:2401.00001"); err != nil || !strings.HasSuffix(got.Abstract.Abstract, " Revised.") {
		t.Errorf("the paper with a newer text: %q, %v; want the newer text kept", got.Abstract.Abstract, err)
	}
	if got, _ := moved.st.Summaries(ctx, "arxiv:2401.00002"); len(got) != 1 {
		t.Errorf("the third paper's TL;DRs: %+v, want the exported one", got)
	}
}

// An archive an older release filled stores some papers' text as it came, with a PDF's
// ligatures or arXiv's TeX accents, which ingest now writes as letters (paper.Abstract.
// LegacyHash): its export's TL;DRs and vectors are of that text, and import, import-tldrs and
// import-embeddings take them for the paper the import stored with its new form, as the store
// keeps a paper's outputs when it is ingested again.
func TestImportTakesTheOutputsOfALegacyText(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	ctx := t.Context()
	legacy := paper.Abstract{ID: "arxiv:2401.00007", Title: "Eﬃcient routing of sparse experts",
		Abstract: "We make sparse routing eﬃcient with a balanced loss."}
	if _, err := e.st.UpsertPapers(ctx, []paper.Abstract{legacy}, store.Work{}); err != nil { // as a release before 2026-12-06 stored it
		t.Fatal(err)
	}
	sp, err := e.st.EnsureSpace(ctx, paper.Space{Model: "imported", Dimensions: 3, Template: embed.TemplateTitleAbstract})
	if err != nil {
		t.Fatal(err)
	}
	h := legacy.ContentHash()
	if _, err := e.st.SaveSummaries(ctx, []paper.Summary{{PaperID: legacy.ID, Text: "Balanced routers make sparse routing efficient.",
		Model: "gpt-4o", PromptVersion: "tldr-v1", ContentHash: h, Validation: paper.ValidOK}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{{PaperID: legacy.ID, Vector: []float32{1, 2, 3}, ContentHash: h}}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	var errw bytes.Buffer
	if _, err := runExport(ctx, e.st, exportOptions{out: file, tldr: store.TLDRKeep{Model: "gpt-4o", PromptVersion: "tldr-v1"},
		vectors: true, space: strconv.FormatInt(sp.ID, 10)}, &errw); err != nil {
		t.Fatal(err)
	}
	moved := newArchiveEnv(t, openaitest.Config{})
	errw.Reset()
	res, err := runImport(ctx, moved.st, file, &errw)
	if err != nil || res.Papers.Stored != 1 || res.TLDRs.Saved != 1 || res.Vectors.Loaded != 1 {
		t.Fatalf("import: %+v, %v; want the paper, its TL;DR and its vector\n%s", res, err, errw.String())
	}
	p, err := moved.st.Paper(ctx, legacy.ID)
	if err != nil || p.Title != "Efficient routing of sparse experts" {
		t.Fatalf("the paper was stored as %q, %v; want its text with letters", p.Title, err)
	}
	if got, _ := moved.st.Summaries(ctx, legacy.ID); len(got) != 1 || got[0].ContentHash != p.ContentHash {
		t.Errorf("TL;DRs %+v, want the exported one of the paper's text (%s)", got, p.ContentHash)
	}
}

// import of a file that is no export (paperpipe embed's vectors) stops after its first bad
// lines, saying what it wants, instead of naming every line.
func TestImportOfAnotherFileStops(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	var b strings.Builder
	for i := range 500 {
		fmt.Fprintf(&b, `{"id":"2401.%05d","embedding":[1,2,3],"model":"m"}`+"\n", i)
	}
	file := filepath.Join(t.TempDir(), "vectors.jsonl")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	res, err := runImport(t.Context(), e.st, file, &errw)
	if err == nil || !strings.Contains(err.Error(), "not an export of paperpipe") || res.Papers.Bad != maxBadLead {
		t.Errorf("import of vectors: %+v, %v; want it stopped after %d bad lines", res, err, maxBadLead)
	}
}

// exportPaidTLDRs stores a gpt-4o tldr-v1 TL;DR (text of its paper's id, with validation) for
// each of e's first n papers, exports the archive with them, and returns the export's file.
func exportPaidTLDRs(t *testing.T, e *archiveEnv, n int, text func(id string) string, validation string) string {
	t.Helper()
	ctx := t.Context()
	var sums []paper.Summary
	for i := range n {
		p, err := e.st.Paper(ctx, fmt.Sprintf("arxiv:2401.%05d", i))
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, paper.Summary{PaperID: p.ID, Text: text(p.ID), Model: "gpt-4o", PromptVersion: "tldr-v1",
			ContentHash: p.ContentHash, Validation: validation})
	}
	if _, err := e.st.SaveSummaries(ctx, sums); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	var errw bytes.Buffer
	if _, err := runExport(ctx, e.st, exportOptions{out: file, tldr: store.TLDRKeep{Model: "gpt-4o", PromptVersion: "tldr-v1"}}, &errw); err != nil {
		t.Fatalf("export: %v\n%s", err, errw.String())
	}
	return file
}

// An export carries when each TL;DR was written (tldr_created_at), and an import dates it so:
// imported TL;DRs were dated by the import, so lists, which show a paper's newest TL;DR, put an
// old archive's TL;DRs before those written here of another model or version.
func TestImportedTLDRsKeepTheTimeTheyWereWritten(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	file := exportPaidTLDRs(t, e, 3, func(id string) string { return "Balanced routers lower the loss." }, paper.ValidOK)
	// exportPaidTLDRs exported them as written now: written again, dated long ago.
	if _, err := e.st.Pool().Exec(ctx, `UPDATE tldrs SET created_at = '2026-01-02 03:04:05.123456+00'`); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	if _, err := runExport(ctx, e.st, exportOptions{out: file, tldr: store.TLDRKeep{Model: "gpt-4o", PromptVersion: "tldr-v1"}}, &errw); err != nil {
		t.Fatalf("export: %v\n%s", err, errw.String())
	}
	moved := newArchiveEnv(t, openaitest.Config{})
	res, err := runImport(ctx, moved.st, file, &errw)
	if err != nil || res.TLDRs.Saved != 3 {
		t.Fatalf("import: %+v, %v; want 3 TL;DRs saved\n%s", res, err, errw.String())
	}
	var dated int
	if err := moved.st.Pool().QueryRow(ctx, `SELECT count(*) FROM tldrs WHERE created_at = '2026-01-02 03:04:05.123456+00'`).Scan(&dated); err != nil {
		t.Fatal(err)
	}
	if dated != 3 {
		t.Errorf("%d of the 3 imported TL;DRs are dated when the old archive wrote them, want all", dated)
	}
}

// An import into an archive that holds none of the papers says they were stored, and nothing of
// papers held already: the count of new ones is said only when some were held.
func TestImportIntoAnEmptyArchiveSpeaksOfNoPapersHeld(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	file := exportPaidTLDRs(t, e, 3, func(id string) string { return "Balanced routers lower the loss." }, paper.ValidOK)
	moved := newArchiveEnv(t, openaitest.Config{})
	var errw bytes.Buffer
	res, err := runImport(t.Context(), moved.st, file, &errw)
	if err != nil || res.Papers.Stored != 3 || res.Papers.New != 3 {
		t.Fatalf("import: %+v, %v; want the 3 papers stored, all new\n%s", res, err, errw.String())
	}
	if said := errw.String(); !strings.Contains(said, "3 papers stored, ") || strings.Contains(said, "held already") {
		t.Errorf("import into an empty archive said:\n%s\nwant '3 papers stored, ' and nothing of papers held already", said)
	}
}

// An export with the vectors of a space of a fitted offline model (what `make demo` leaves:
// fit activates it) carries that model, so that the archive moves whole: after import,
// status, semantic search and a worker run as in the old archive, with no fit. The model's
// lines are skipped by ingest, import-tldrs and import-embeddings, a second import changes
// nothing, and a model tampered with or cut short is refused as a bad line, file:line.
func TestImportOfAFittedSpaceCarriesItsModel(t *testing.T) {
	t.Parallel()
	old := newCLI(t)
	old.ok("ingest", sampleFile)
	old.ok("worker", "--exit-when-idle")
	old.ok("fit")
	dir := t.TempDir()
	file := filepath.Join(dir, "archive.jsonl")
	old.ok("export", "-o", file, "--vectors")
	want := old.ok("search", "mixture of experts routing").stdout

	moved := newCLI(t)
	moved.ok("import", file)
	for _, args := range [][]string{{"status"}, {"worker", "--exit-when-idle"}} {
		moved.ok(args...)
	}
	if got := moved.ok("search", "mixture of experts routing").stdout; got != want {
		t.Errorf("search in the moved archive:\n%s\nwant, as in the old:\n%s", got, want)
	}
	if r := moved.ok("import", file); strings.Contains(r.stderr, "bad line") && !strings.Contains(r.stderr, "0 bad lines") {
		t.Errorf("a second import:\n%s", r.stderr)
	}
	// The readers of exports that do not restore the model skip its lines.
	other := newCLI(t)
	if r := other.ok("ingest", file); strings.Contains(r.stderr, "offline_model") || !strings.Contains(r.stderr, "108 read, 108 published") || !strings.Contains(r.stderr, " 0 rejected") {
		t.Errorf("ingest of the export:\n%s", r.stderr)
	}
	other.ok("worker", "--exit-when-idle")
	other.ok("import-tldrs", file)
	other.ok("import-embeddings", file)

	// A model changed or cut short is refused, naming its line; the papers are imported.
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(raw), "\n"), "\n")
	var model []int
	for i, l := range lines {
		if strings.HasPrefix(l, `{"record":"offline_model"`) {
			model = append(model, i)
		}
	}
	if len(model) == 0 {
		t.Fatalf("the export holds no line of its space's fitted model")
	}
	last := model[len(model)-1]
	tampered := slices.Clone(lines)
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[last]), &rec); err != nil {
		t.Fatal(err)
	}
	data := rec["data"].(string)
	changed := []byte(data)
	changed[len(changed)/2] ^= 'A' ^ 'B' // still base64, other bytes
	rec["data"] = string(changed)
	b, _ := json.Marshal(rec)
	tampered[last] = string(b) + "\n"
	cut := slices.Clone(lines)
	rec["data"] = data[:len(data)/8*4] // half of the bytes
	b, _ = json.Marshal(rec)
	cut[last] = string(b) + "\n"
	for name, ls := range map[string][]string{"tampered": tampered, "cut": cut} {
		f := filepath.Join(dir, name+".jsonl")
		if err := os.WriteFile(f, []byte(strings.Join(ls, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		fresh := newCLI(t)
		r := fresh.run("import", f)
		if r.code == 0 || !regexp.MustCompile(regexp.QuoteMeta(f)+`:\d+: .*offline model`).MatchString(r.stderr) {
			t.Errorf("import of a %s model: exit %d\n%s\nwant it refused, naming its line", name, r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "108 papers stored") {
			t.Errorf("import of a %s model stored not every paper:\n%s", name, r.stderr)
		}
	}
}

// An archive whose active space's fitted offline model is missing (imported from an export of
// a release before exports carried it) still shows its status: its counts, and that the model
// is missing, with the command that makes it again.
func TestStatusOfASpaceWhoseFittedModelIsMissing(t *testing.T) {
	t.Parallel()
	old := newCLI(t)
	old.ok("ingest", sampleFile)
	old.ok("worker", "--exit-when-idle")
	old.ok("fit")
	file := filepath.Join(t.TempDir(), "archive.jsonl")
	old.ok("export", "-o", file, "--vectors")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var papers []string // the export as an older release wrote it: no model
	for _, l := range strings.SplitAfter(string(raw), "\n") {
		if !strings.Contains(l, `"record"`) {
			papers = append(papers, l)
		}
	}
	if err := os.WriteFile(file, []byte(strings.Join(papers, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	moved := newCLI(t)
	moved.ok("import", file)
	r := moved.run("status")
	if r.code != 0 || !regexp.MustCompile(`with embedding +108`).MatchString(r.stdout) ||
		!regexp.MustCompile(`paperpipe-offline-tfidf-[0-9a-f]+ is not in the database.*paperpipe fit`).MatchString(r.stdout) {
		t.Errorf("status without the fitted model: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var st map[string]any
	moved.json(&st, "status")
	if st["missing_model"] == nil {
		t.Errorf("status --json does not say the model is missing: %v", st)
	}
	// serve starts all the same: its status counts the space, and its searches follow the
	// model once fit has made it again.
	base := startServe(t, moved)
	if code, body := get(t, base+"/api/status"); code != 200 || !strings.Contains(body, `"with_embedding": 108`) ||
		!strings.Contains(body, `"missing_model"`) {
		t.Errorf("GET /api/status without the fitted model (want its counts, and the model named missing): %d %s", code, body)
	}
	moved.ok("fit")
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := get(t, base+"/api/search?q=mixture+of+experts&mode=semantic")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve's semantic search after fit: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := moved.ok("status"); strings.Contains(r.stdout, "not in the database") {
		t.Errorf("status after fit:\n%s", r.stdout)
	}
	if code, body := get(t, base+"/api/status"); code != 200 || strings.Contains(body, `"missing_model"`) {
		t.Errorf("GET /api/status after fit: %d %s", code, body)
	}
}
