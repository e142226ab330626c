package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// jsonlParser reads JSON lines: the JSONL format or the arXiv OAI snapshot. Each line is
// decoded on its own, so a bad line is reported and the next one is read as usual.
type jsonlParser struct {
	r   *Reader
	lr  *lineReader
	oai bool
}

func newJSONLParser(r *Reader, oai bool) *jsonlParser {
	return &jsonlParser{r: r, lr: newLineReader(r.br, r.opts.MaxRecordBytes), oai: oai}
}

func (p *jsonlParser) offset() int64 { return p.lr.off }

func (p *jsonlParser) next() (paper.Abstract, error) {
	for {
		line, n, err := p.lr.next()
		if err != nil {
			if err != io.EOF {
				err = p.r.ioErr(p.lr.line+1, err)
			}
			return paper.Abstract{}, err
		}
		if n > len(line) {
			return paper.Abstract{}, p.r.recordErr(p.lr.line, sniffID(line),
				invalidf("line is %d bytes, longer than the %d-byte limit", n, p.r.opts.MaxRecordBytes))
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if p.oai {
			return p.parseOAI(line, p.lr.line)
		}
		a, err := p.parseJSONL(line, p.lr.line)
		if err == errNotAPaper {
			continue
		}
		return a, err
	}
}

// errNotAPaper is parseJSONL's answer for a line of paperpipe export that is a record of
// another kind (a fitted offline model): skipped, as no paper.
var errNotAPaper = errors.New("not a paper")

// jsonlRecord is one JSONL line. Fields that may take several JSON types are kept raw.
type jsonlRecord struct {
	ID         json.RawMessage `json:"id"`
	Title      string          `json:"title"`
	Abstract   string          `json:"abstract"`
	Summary    string          `json:"summary"` // accepted when abstract is absent
	Authors    json.RawMessage `json:"authors"`
	Categories json.RawMessage `json:"categories"`
	Published  string          `json:"published"`
	URL        string          `json:"url"`
	// Record names the kind of a line of paperpipe export that is not a paper ("offline_model":
	// a part of the fitted offline model of the exported space), which has no id or title.
	Record string `json:"record"`
}

func (p *jsonlParser) parseJSONL(line []byte, ln int) (paper.Abstract, error) {
	var rec jsonlRecord
	if err := decodeLine(line, &rec); err != nil {
		return paper.Abstract{}, p.r.recordErr(ln, sniffID(line), err)
	}
	if rec.Record != "" && rec.ID == nil && rec.Title == "" && rec.Abstract == "" && rec.Summary == "" {
		return paper.Abstract{}, errNotAPaper
	}
	f := fields{line: ln, title: rec.Title, abstract: rec.Abstract, url: rec.URL}
	if f.abstract == "" {
		f.abstract = rec.Summary
	}
	var errs []error
	var err error
	f.rawID, err = stringOrNumber("id", rec.ID)
	errs = append(errs, err)
	f.authors, err = stringList("authors", rec.Authors, splitAuthors)
	errs = append(errs, err)
	f.categories, err = stringList("categories", rec.Categories, strings.Fields)
	errs = append(errs, err)
	f.published, err = parseDate("published", rec.Published)
	errs = append(errs, err)
	return p.r.buildOrFail(f, errs)
}

// oaiRecord is one line of the arXiv OAI metadata snapshot (comments, journal-ref, license
// and the rest are not used).
type oaiRecord struct {
	ID      string `json:"id"`
	Authors string `json:"authors"`
	// AuthorsParsed is arXiv's parse of Authors: [last, first, suffix, affiliation…] for each
	// author, with TeX accents turned into letters.
	AuthorsParsed [][]string `json:"authors_parsed"`
	Title         string     `json:"title"`
	Abstract      string     `json:"abstract"`
	Categories    string     `json:"categories"`
	Versions      []struct {
		Version string `json:"version"`
		Created string `json:"created"`
	} `json:"versions"`
	UpdateDate string `json:"update_date"`
}

// oaiCreated is the layout of versions[].created: "Mon, 2 Apr 2007 19:18:42 GMT".
const oaiCreated = "Mon, 2 Jan 2006 15:04:05 MST"

func (p *jsonlParser) parseOAI(line []byte, ln int) (paper.Abstract, error) {
	var rec oaiRecord
	if err := decodeLine(line, &rec); err != nil {
		return paper.Abstract{}, p.r.recordErr(ln, sniffID(line), err)
	}
	if strings.TrimSpace(rec.ID) == "" {
		return paper.Abstract{}, p.r.recordErr(ln, "", invalidf("id is missing"))
	}
	f := fields{
		line:       ln,
		rawID:      rec.ID,
		title:      rec.Title,
		abstract:   rec.Abstract,
		authors:    oaiAuthors(rec),
		categories: strings.Fields(rec.Categories),
		tex:        true,
	}
	var errs []error
	published := ""
	for _, v := range rec.Versions {
		if v.Version == "v1" {
			published = v.Created
		}
	}
	if published != "" {
		t, err := time.Parse(oaiCreated, strings.TrimSpace(published))
		if err != nil {
			errs = append(errs, invalidf("versions: v1 created %q is not a date like %q", published, oaiCreated))
		}
		f.published = t.UTC()
	} else {
		var err error
		f.published, err = parseDate("update_date", rec.UpdateDate)
		errs = append(errs, err)
	}
	a, err := p.r.buildOrFail(f, errs)
	if err != nil {
		return a, err
	}
	id, ok := strings.CutPrefix(a.ID, "arxiv:")
	if !ok {
		// Every id of the snapshot is an arXiv id: this is other JSON lines, read as the
		// snapshot (--format oai), and would be stored with an arxiv.org link that is not its.
		return paper.Abstract{}, p.r.recordErr(ln, a.ID,
			invalidf("not an arXiv id, as every id of the arXiv OAI snapshot is: for other JSON lines, use --format jsonl"))
	}
	a.URL = "https://arxiv.org/abs/" + id
	return a, nil
}

// oaiAuthors are the names in rec.AuthorsParsed, "first last suffix": the author line as
// written (rec.Authors) keeps TeX ("C. Bal\\'azs") and mixes affiliations in ("A. Smith (1)
// ((1) MIT, Cambridge)"), which no split at commas undoes. The line is split only in a record
// without names in AuthorsParsed. arXiv's parse writes hyphenated initials "C. -P."; they are "C.-P."
// again, as authors write them.
func oaiAuthors(rec oaiRecord) []string {
	var out []string
	for _, a := range rec.AuthorsParsed {
		var parts []string
		if len(a) > 1 {
			parts = append(parts, strings.ReplaceAll(a[1], " -", "-"))
		}
		if len(a) > 0 {
			parts = append(parts, a[0])
		}
		if len(a) > 2 {
			parts = append(parts, a[2])
		}
		if name := strings.Join(strings.Fields(strings.Join(parts, " ")), " "); name != "" {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return splitAuthors(rec.Authors)
	}
	return out
}

// buildOrFail builds f unless one of errs (from decoding optional fields) is set; validation
// of id, title and abstract comes first, as those errors matter more.
func (r *Reader) buildOrFail(f fields, errs []error) (paper.Abstract, error) {
	a, err := r.build(f)
	if err != nil {
		return a, err
	}
	for _, e := range errs {
		if e != nil {
			return paper.Abstract{}, r.recordErr(f.line, a.ID, e)
		}
	}
	return a, nil
}

// decodeLine decodes one JSON object, saying in plain words what is wrong with a bad one.
// encoding/json would silently turn invalid UTF-8 into U+FFFD, so that is checked first.
func decodeLine(line []byte, v any) error {
	if line[0] != '{' {
		return invalidf("line is not a JSON object (it starts with %q)", firstRune(line))
	}
	if !utf8.Valid(line) {
		return badUTF8(line)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return jsonProblem(line, err)
	}
	return nil
}

func firstRune(b []byte) string {
	r, _ := utf8.DecodeRune(b)
	return string(r)
}

// idRe finds "id": "…" near the start of a line too long or too broken to decode.
var idRe = regexp.MustCompile(`"id"\s*:\s*"([^"\\]{1,200})"`)

// sniffID returns the id of a record that could not be decoded, if one is plain to see.
func sniffID(line []byte) string {
	if m := idRe.FindSubmatch(line[:min(len(line), 64<<10)]); m != nil && utf8.Valid(m[1]) {
		if id, err := paper.CanonicalID(string(m[1])); err == nil {
			return id
		}
		return string(m[1])
	}
	return ""
}
