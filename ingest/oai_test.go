package ingest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

func TestOAIFixture(t *testing.T) {
	t.Parallel()
	papers, _, events := readFixture(t, "oai.jsonl", OAI)
	equalEvents(t, events, []string{
		"paper oai.jsonl:1 Calculation of prompt diphoton production cross sections at Tevatron and LHC energies",
		"paper oai.jsonl:2 An Old-Style Identifier",
		"error oai.jsonl:3: arxiv:2401.00003: abstract is empty",
		"paper oai.jsonl:4 Only an Update Date",
		`error oai.jsonl:5: arxiv:2401.00005: versions: v1 created "someday" is not a date like "Mon, 2 Jan 2006 15:04:05 MST"`,
	})
	if len(papers) != 3 {
		t.Fatalf("got %d papers", len(papers))
	}
	want := paper.Abstract{
		ID:    "arxiv:0704.0001",
		Title: "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies",
		Abstract: "A fully differential calculation in perturbative quantum chromodynamics is presented for the " +
			"production of massive photon pairs at hadron colliders. All next-to-leading order perturbative " +
			"contributions from quark-antiquark, gluon-(anti)quark, and gluon-gluon subprocesses are included.",
		Authors:    []string{"C. Balázs", "E. L. Berger", "P. M. Nadolsky", "C.-P. Yuan"},
		Categories: []string{"hep-ph"},
		Published:  time.Date(2007, 4, 2, 19, 18, 42, 0, time.UTC),
		URL:        "https://arxiv.org/abs/0704.0001",
		Source:     "oai.jsonl:1",
	}
	if !reflect.DeepEqual(papers[0], want) {
		t.Errorf("first paper:\n got %+v\nwant %+v", papers[0], want)
	}
	if p := papers[1]; p.ID != "arxiv:hep-th/9901001" || p.URL != "https://arxiv.org/abs/hep-th/9901001" ||
		!reflect.DeepEqual(p.Authors, []string{"A. Author", "B. Author"}) ||
		!reflect.DeepEqual(p.Categories, []string{"hep-th", "math-ph", "math.MP"}) {
		t.Errorf("old-style paper: %+v", p)
	}
	if p := papers[2]; !p.Published.Equal(time.Date(2024, 1, 4, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("published from update_date = %v", p.Published)
	}
}

// oaiFiller is the abstract of generated lines, two sentences: lines are about 600 bytes, so
// 100,000 of them are about 60 MB.
const oaiFiller = "We measure the memory a streaming reader needs;\nit must not grow with the input. " +
	"The reader holds one line at a time, and the rest of the snapshot stays on disk or in the pipe."

// oaiLine writes line i (0-based) of a generated OAI snapshot to w.
func oaiLine(w *bufio.Writer, i int) {
	w.WriteString(`{"id":"`)
	w.WriteString(oaiID(i))
	w.WriteString(`","submitter":"Gen Erator","authors":"A. One, B. Two and C. Three","title":"Generated paper `)
	w.WriteString(strconv.Itoa(i))
	w.WriteString(`","comments":"10 pages","journal-ref":null,"doi":null,"report-no":null,"categories":"cs.LG stat.ML","license":null,"abstract":"  `)
	w.WriteString(strings.ReplaceAll(oaiFiller, "\n", `\n`))
	w.WriteString(`\n","versions":[{"version":"v1","created":"Mon, 1 Jan 2024 10:00:00 GMT"},{"version":"v2","created":"Tue, 2 Jan 2024 10:00:00 GMT"}],"update_date":"2024-01-02","authors_parsed":[["One","A.",""],["Two","B.",""],["Three","C.",""]]}`)
	w.WriteByte('\n')
}

// oaiID is the arXiv id of generated line i: unique and valid for i < 1,000,000.
func oaiID(i int) string { return fmt.Sprintf("%04d.%05d", 2401+i/10000, i%10000) }

// TestOAIStreamsInBoundedMemory reads a generated 100,000-line snapshot (about 60 MB) that is
// never held in memory: a goroutine writes it line by line into an io.Pipe. Line 50,000 is
// truncated. Every good record must come through in order, the bad one must be reported with
// its line, and the heap must stay far below the size of the input.
//
// The bound: the Reader holds a 64 KiB bufio buffer, one line (600 bytes here) and one decoded
// record; the test holds a few counters. That is well under 1 MiB above the test binary's own
// heap of a few MiB (about 1 MiB measured in all). A Reader that materialised the input, or
// kept the records, would need more than 60 MB. 16 MiB sits between the two with room for GC
// slack and the runtime's own allocations, so the test fails on a leak that grows with the
// input and never on noise. The test is not parallel so that other tests' heaps do not count.
func TestOAIStreamsInBoundedMemory(t *testing.T) {
	const (
		total    = 100_000
		badLine  = 50_000
		maxHeap  = 16 << 20
		sampleAt = 10_000
	)
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 64<<10)
		for i := range total {
			if i+1 == badLine {
				fmt.Fprintf(w, `{"id":"%s","title":"Cut off","abstract":"this line ends in the mid`+"\n", oaiID(i))
				continue
			}
			oaiLine(w, i)
		}
		pw.CloseWithError(w.Flush())
	}()
	defer pr.Close()

	r, err := NewReader(pr, "snapshot.json", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != OAI {
		t.Fatalf("Format() = %q, want oai", r.Format())
	}
	var (
		good, bad int
		maxInUse  uint64
		ms        runtime.MemStats
		wantLine  = 1
	)
	for {
		a, err := r.Next()
		if err == io.EOF {
			break
		}
		if re, ok := err.(*RecordError); ok {
			bad++
			if re.Line != badLine || re.File != "snapshot.json" || re.ID != "arxiv:"+oaiID(badLine-1) {
				t.Errorf("record error %v: want snapshot.json line %d", re, badLine)
			}
			wantLine = re.Line + 1
			continue
		}
		if err != nil {
			t.Fatalf("fatal error after %d records: %v", good, err)
		}
		// In order, none lost: record k comes from line k with the id written there.
		if want := "snapshot.json:" + strconv.Itoa(wantLine); a.Source != want || a.ID != "arxiv:"+oaiID(wantLine-1) {
			t.Fatalf("record %d: Source %q ID %q, want %q arxiv:%s", good, a.Source, a.ID, want, oaiID(wantLine-1))
		}
		wantLine++
		good++
		if good%sampleAt == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			maxInUse = max(maxInUse, ms.HeapInuse)
		}
	}
	if good != total-1 || bad != 1 {
		t.Errorf("got %d good records and %d errors, want %d and 1", good, bad, total-1)
	}
	if maxInUse == 0 || maxInUse > maxHeap {
		t.Errorf("max HeapInuse %d MiB, want below %d MiB", maxInUse>>20, maxHeap>>20)
	}
	t.Logf("read %d bytes; max HeapInuse %.1f MiB", r.Offset(), float64(maxInUse)/(1<<20))
}

// BenchmarkOAI measures parsing of OAI snapshot lines, reported as records/s.
func BenchmarkOAI(b *testing.B) {
	const n = 10_000
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	for i := range n {
		oaiLine(w, i)
	}
	w.Flush()
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	records := 0
	start := time.Now()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data), "bench", Options{Format: OAI})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			records++
		}
	}
	b.ReportMetric(float64(records)/time.Since(start).Seconds(), "records/s")
}

func TestOAIBadRecords(t *testing.T) {
	t.Parallel()
	const next = `{"id":"2401.00009","submitter":"N","title":"Next","abstract":"Still read.","versions":[]}`
	for _, tc := range []struct{ name, line, want string }{
		{"missing id", `{"submitter":"S","title":"T","abstract":"A."}`, "f:1: id is missing"},
		{"malformed id", `{"id":"arXiv:12","submitter":"S","title":"T","abstract":"A."}`, `f:1: arXiv:12: malformed arXiv id "arXiv:12"`},
		{"truncated", `{"id":"0704.0002","submitter":"S","title":"T","abs`, "f:1: arxiv:0704.0002: truncated JSON: the record ends before its object is closed"},
		{"authors not a string", `{"id":"0704.0002","submitter":"S","authors":["A"],"title":"T","abstract":"A."}`, "f:1: arxiv:0704.0002: authors is a JSON array, want a string"},
		// JSON lines of another source read with --format oai: stored, they had a link to
		// https://arxiv.org/abs/id:lab-7, which replaced the URL of a paper ingested before.
		{"not an arXiv id", `{"id":"lab-7","title":"T","abstract":"A.","url":"https://lab.example/7"}`, "f:1: id:lab-7: not an arXiv id, as every id of the arXiv OAI snapshot is: for other JSON lines, use --format jsonl"},
		{"a DOI", `{"id":"10.1000/xyz","title":"T","abstract":"A."}`, "f:1: doi:10.1000/xyz: not an arXiv id, as every id of the arXiv OAI snapshot is: for other JSON lines, use --format jsonl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, events := readString(t, tc.line+"\n"+next+"\n", "f", Options{Format: OAI})
			equalEvents(t, events, []string{"error " + tc.want, "paper f:2 Next"})
		})
	}
}

// A date that cannot be read is named by the field that holds it in the input: every format's
// message said `published "…"`, a field an arXiv OAI line (update_date), a Hugging Face daily
// feed (publishedAt) and an Atom entry without <published> (<updated>) do not have, so a user
// looked in the file for what was not there.
func TestBadDateNamesItsField(t *testing.T) {
	t.Parallel()
	const abstract = "We study routing."
	for _, tc := range []struct {
		format     Format
		input      string
		wantPrefix string
	}{
		{JSONL, `{"id":"2401.00001","title":"T","abstract":"` + abstract + `","published":"someday"}` + "\n", `f:1: arxiv:2401.00001: published "someday"`},
		{OAI, `{"id":"2401.00001","authors":"A","title":"T","abstract":"` + abstract + `","categories":"cs.LG","update_date":"someday"}` + "\n", `f:1: arxiv:2401.00001: update_date "someday"`},
		{HFDaily, `[{"paper":{"id":"2401.00001","title":"T","summary":"` + abstract + `","publishedAt":"someday"}}]`, `f:1: record 1: arxiv:2401.00001: publishedAt "someday"`},
		{Atom, `<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2401.00001v1</id><title>T</title><summary>` + abstract + `</summary><published>someday</published></entry></feed>`, `f:1: record 1: arxiv:2401.00001: <published> "someday"`},
		{Atom, `<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2401.00001v1</id><title>T</title><summary>` + abstract + `</summary><updated>someday</updated></entry></feed>`, `f:1: record 1: arxiv:2401.00001: <updated> "someday"`},
	} {
		_, _, events := readString(t, tc.input, "f", Options{Format: tc.format})
		want := "error " + tc.wantPrefix + " is not an RFC 3339 time or a YYYY-MM-DD date"
		if len(events) != 1 || events[0] != want {
			t.Errorf("%s: events %q, want [%q]", tc.format, events, want)
		}
	}
}

// The authors of an OAI record are arXiv's own parse of its author line, authors_parsed
// ([last, first, suffix, affiliation…], TeX accents turned into letters), not the line split
// at commas and "and": that kept TeX ("C. Bal\'azs", which a search for Balázs misses), made
// affiliations authors ("((1) University of Texas at Austin") and a suffix one too ("Jr.").
// A record without authors_parsed still has its author line split.
func TestOAIAuthorsFromAuthorsParsed(t *testing.T) {
	t.Parallel()
	const rest = `"title":"T","abstract":"We study routing.","categories":"astro-ph","versions":[{"version":"v1","created":"Mon, 2 Apr 2007 19:18:42 GMT"}]`
	for _, tc := range []struct {
		name, fields string
		want         []string
	}{
		{"TeX accents", `"authors":"C. Bal\\'azs, E. L. Berger, C.-P. Yuan","authors_parsed":[["Balázs","C.",""],["Berger","E. L.",""],["Yuan","C. -P.",""]]`,
			[]string{"C. Balázs", "E. L. Berger", "C.-P. Yuan"}},
		{"affiliations", `"authors":"Paul Harvey (1), Bruno Merin (2) ((1) University of Texas at Austin, (2) Leiden Observatory)","authors_parsed":[["Harvey","Paul","","University of Texas at Austin"],["Merin","Bruno","","Leiden Observatory"]]`,
			[]string{"Paul Harvey", "Bruno Merin"}},
		{"a suffix", `"authors":"Neal J. Evans II, John Smith, Jr. and Ann Lee","authors_parsed":[["Evans","Neal J.","II"],["Smith","John","Jr"],["Lee","Ann",""]]`,
			[]string{"Neal J. Evans II", "John Smith Jr", "Ann Lee"}},
		{"a collaboration", `"authors":"ATLAS Collaboration: G. Aad","authors_parsed":[["ATLAS Collaboration","",""],["Aad","G.",""]]`,
			[]string{"ATLAS Collaboration", "G. Aad"}},
		{"no authors_parsed", `"authors":"A. One, B. Two and C. Three"`, []string{"A. One", "B. Two", "C. Three"}},
		{"empty authors_parsed", `"authors":"A. One and B. Two","authors_parsed":[]`, []string{"A. One", "B. Two"}},
		{"no name in authors_parsed", `"authors":"A. One and B. Two","authors_parsed":[["","",""]]`, []string{"A. One", "B. Two"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			papers, _, events := readString(t, `{"id":"0704.0009",`+tc.fields+`,`+rest+"}\n", "f", Options{Format: OAI})
			if len(papers) != 1 {
				t.Fatalf("events %q", events)
			}
			if !reflect.DeepEqual(papers[0].Authors, tc.want) {
				t.Errorf("authors %q, want %q", papers[0].Authors, tc.want)
			}
		})
	}
}
