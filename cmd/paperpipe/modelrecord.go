package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/store"
)

// recordOfflineModel is the kind of an export's lines that hold a fitted offline model, the
// one the exported space's vectors were made with (embed.Fitted): without it the space cannot
// embed a query or a new paper in the archive the export moves to. A line that is not a paper
// has "record" first, naming its kind; every reader of exports (ingest, import, import-tldrs,
// import-embeddings) skips the kinds it does not use, so that a later release may add others.
const recordOfflineModel = "offline_model"

// modelPartBytes is how many bytes of a model one line holds, base64-encoded (1.4 MB): a
// model fitted on fit's default 4,000 papers is about 13 MB, and ingest refuses a line longer
// than 4 MB (ingest.Options.MaxRecordBytes).
const modelPartBytes = 1 << 20

// maxModelParts bounds the parts of a model an import gathers in memory (256 MB).
const maxModelParts = 256

// modelLine is a line of an export holding part Part (1 to Parts) of the stored form of the
// fitted offline model Name (store.OfflineModel.Data, which embed.Load reads).
type modelLine struct {
	Record string `json:"record"`
	Name   string `json:"name"`
	Part   int    `json:"part"`
	Parts  int    `json:"parts"`
	Data   []byte `json:"data"` // base64 in JSON
}

// modelLines splits model m into the lines of an export.
func modelLines(m store.OfflineModel) []modelLine {
	parts := (len(m.Data) + modelPartBytes - 1) / modelPartBytes
	out := make([]modelLine, 0, parts)
	for i := range parts {
		out = append(out, modelLine{Record: recordOfflineModel, Name: m.Name, Part: i + 1, Parts: parts,
			Data: m.Data[i*modelPartBytes : min(len(m.Data), (i+1)*modelPartBytes)]})
	}
	return out
}

// modelRestorer gathers the parts of the fitted offline models an export holds, line by line,
// and stores each once it is whole and loads as the model its name says (the name is a hash of
// the content: a model changed since it was exported, or cut short, is refused). Saving a
// model the archive holds changes nothing.
type modelRestorer struct {
	st *store.Store
	// the model being gathered: its name, parts and the line of its first part; name "" when none.
	name       string
	parts      int
	data       []byte
	got, first int
	// Restored names the models stored.
	Restored []string
}

// add reads line n, a record line whose kind is recordOfflineModel, and stores the model when
// it is its last part. problem says what is wrong with the line (a bad line, or the model it
// ends), "" when nothing; err is a failure to store it.
func (r *modelRestorer) add(ctx context.Context, n int, l modelLine) (problem string, err error) {
	switch {
	case !embed.IsFittedModel(l.Name) || validName("", l.Name) != "":
		return fmt.Sprintf("offline model %q: not the name of a fitted offline model (%s…)", termSafe(clip(l.Name, 60), false), embed.FittedModelPrefix), nil
	case l.Parts < 1 || l.Parts > maxModelParts || l.Part < 1 || l.Part > l.Parts:
		return fmt.Sprintf("offline model %s: part %d of %d, want 1 to %d parts", l.Name, l.Part, l.Parts, maxModelParts), nil
	case len(l.Data) == 0 || len(l.Data) > modelPartBytes:
		return fmt.Sprintf("offline model %s: part %d holds %d bytes, want 1 to %d", l.Name, l.Part, len(l.Data), modelPartBytes), nil
	}
	if l.Part == 1 {
		prev := r.unfinished()
		r.name, r.parts, r.data, r.got, r.first = l.Name, l.Parts, append([]byte(nil), l.Data...), 1, n
		if prev != "" {
			return prev, nil
		}
	} else {
		if r.name != l.Name || r.parts != l.Parts || r.got+1 != l.Part {
			r.name = ""
			return fmt.Sprintf("offline model %s: part %d of %d comes without the parts before it", l.Name, l.Part, l.Parts), nil
		}
		r.data = append(r.data, l.Data...)
		r.got++
	}
	if r.got < r.parts {
		return "", nil
	}
	name, data := r.name, r.data
	r.name, r.data = "", nil
	m, lerr := embed.Load(data)
	switch {
	case lerr != nil:
		return fmt.Sprintf("offline model %s (lines %d-%d): its data is damaged, not stored: %v", name, r.first, n, lerr), nil
	case m.Name() != name:
		return fmt.Sprintf("offline model %s (lines %d-%d): its data is of another model, %s (changed since it was exported), not stored", name, r.first, n, m.Name()), nil
	}
	info := m.Info()
	if err := r.st.SaveOfflineModel(ctx, store.OfflineModel{Name: name, Documents: info.Documents, Terms: info.Terms,
		Components: info.Components, Dimensions: info.Dimensions, Data: data}); err != nil {
		return "", err
	}
	r.Restored = append(r.Restored, name)
	return "", nil
}

// unfinished says which model the file left cut short, "" when none; it is forgotten.
func (r *modelRestorer) unfinished() string {
	if r.name == "" {
		return ""
	}
	defer func() { r.name, r.data = "", nil }()
	return fmt.Sprintf("offline model %s: %d of its %d parts, from line %d: the file is cut short there, the model not stored",
		r.name, r.got, r.parts, r.first)
}

// recordKind returns the kind of an export's line that is not a paper ("record" set, without
// an id or a title), "" for any other line. Only a line holding "record" in quotes, which
// no text of a JSON string holds (its quotes are escaped), is decoded.
func recordKind(line []byte) string {
	if !bytes.Contains(line, []byte(`"record"`)) {
		return ""
	}
	var l struct {
		Record string          `json:"record"`
		ID     json.RawMessage `json:"id"`
		Title  string          `json:"title"`
	}
	if json.Unmarshal(line, &l) != nil || l.ID != nil || l.Title != "" {
		return ""
	}
	return l.Record
}
