// Package ingest turns source files into paper.Abstract values, one record at a time.
//
// Five formats are read: the plain text of the sample archive (a one-line title paragraph, then
// the abstract paragraph), JSON lines (id, title, abstract, optional authors, categories,
// published, url), the arXiv OAI metadata snapshot (JSON lines, millions of them), arXiv API Atom
// feeds and Hugging Face daily-papers JSON. The format is detected from the first bytes of the
// content unless Options.Format forces one. Gzip-compressed content is read decompressed; UTF-16
// text, zip archives and Latin-1 text are refused by NewReader with an error saying how to
// convert them (into Options.Command), a PDF and other binary data with one saying what they
// are. Decode gives the same decoding to readers of other formats. A source without any
// record ends with io.EOF like any other, and Reader.Empty says it held none.
//
// Reading streams: memory is bounded by the longest record accepted (Options.MaxRecordBytes),
// never by the size of the input. Every record carries its origin as "file:line" in
// paper.Abstract.Source, and every error names the file and line. A bad record is returned as a
// *RecordError (wrapping paper.ErrInvalid); the caller logs it and calls Next again, and the
// records after it still come through. Any other error from Next is fatal.
//
// Every Abstract returned has a canonical ID (paper.CanonicalID of the source's identifier, or
// paper.TitleID of the title when the source gives none) and a title and abstract trimmed, with
// each run of white space (newlines included) folded to one space.
package ingest
