package ingest

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

const samplePath = "../testdata/sample-papers.txt"

func TestTextSampleYields108PapersWithoutFurniture(t *testing.T) {
	t.Parallel()
	f, err := os.Open(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(f, "sample-papers.txt", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != Text {
		t.Fatalf("Format() = %q, want text", r.Format())
	}
	papers, errs, _ := readAll(t, r)
	for _, e := range errs {
		t.Errorf("unexpected record error: %v", e)
	}
	if len(papers) != 108 {
		t.Fatalf("got %d papers, want 108", len(papers))
	}
	const first = "Demons in the Detail: On Implementing Load Balancing Loss for Training Specialized Mixture-of-Expert Models"
	if papers[0].Title != first {
		t.Errorf("first title = %q, want %q", papers[0].Title, first)
	}
	if papers[0].Source != "sample-papers.txt:11" {
		t.Errorf("first Source = %q, want sample-papers.txt:11", papers[0].Source)
	}
	if last := papers[107].Abstract; !strings.HasSuffix(last, "different LLMs settings.") {
		t.Errorf("last abstract ends %q", last[max(0, len(last)-40):])
	}
	raw, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	if r.Offset() != int64(len(raw)) {
		t.Errorf("Offset() = %d at the end, want the file size %d", r.Offset(), len(raw))
	}
	lines := strings.Split(string(raw), "\n")
	furniture := map[string]bool{"new": true, "Get trending papers in your email inbox!": true,
		"Subscribe": true, "byAK and the research community": true, "Mar 19": true}
	ids := map[string]bool{}
	for i, p := range papers {
		if furniture[p.Title] || furniture[p.Abstract] {
			t.Errorf("paper %d is page furniture: %q / %q", i, p.Title, p.Abstract)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(p.Source, "sample-papers.txt:"))
		if err != nil {
			t.Fatalf("Source %q is not sample-papers.txt:LINE", p.Source)
		}
		// Line numbers are right: the title is on that line, a blank line, then the abstract.
		if lines[n-1] != p.Title || lines[n] != "" || lines[n+1] != p.Abstract {
			t.Errorf("paper %d (%s): title/abstract not at lines %d and %d", i, p.Source, n, n+2)
		}
		if !strings.HasPrefix(p.ID, "title:") || ids[p.ID] {
			t.Errorf("paper %d: id %q is not a new title id", i, p.ID)
		}
		ids[p.ID] = true
	}
}

func TestTextRule(t *testing.T) {
	t.Parallel()
	abs := words(30)
	long := words(200)
	const withdrawn = "This paper has been withdrawn by the author due to a crucial error in equation 3."
	fourLines := strings.Fields(strings.TrimSuffix(words(24), ".")) // 24 words, 6 a line, ending no sentence
	for i := 6; i < len(fourLines); i += 6 {
		fourLines[i] = "\n" + fourLines[i]
	}
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{
			name: "leading furniture is skipped silently",
			in:   "new\n\nSubscribe\n\nMar 19\n\nA Title\n\n" + abs + "\n",
			want: []string{"paper f:7 A Title"},
		},
		{
			name: "a title with no abstract after the first paper is an error naming its line",
			in:   "First\n\n" + abs + "\n\nOrphan Title\n\nSecond\n\n" + abs + "\n",
			want: []string{
				"paper f:1 First",
				`error f:5: title:` + titleHex("Orphan Title") + `: title "Orphan Title" has no abstract after it: the next paragraph, at line 7, is not an abstract (1 words)`,
				"paper f:7 Second",
			},
		},
		{
			name: "an abstract with no title is an error and the next paper still comes",
			in:   "First\n\n" + abs + "\n\n" + long + "\n\nSecond\n\n" + abs,
			want: []string{
				"paper f:1 First",
				"error f:5: abstract paragraph (200 words) has no title line before it",
				"paper f:7 Second",
			},
		},
		{
			name: "a title at the end of the file is an error",
			in:   "First\n\n" + abs + "\n\nDangling\n",
			want: []string{
				"paper f:1 First",
				`error f:5: title:` + titleHex("Dangling") + `: title "Dangling" has no abstract after it: the file ends after it`,
			},
		},
		{
			name: "wrapped title and abstract are folded; CRLF and white-space-only separators",
			in:   "A Title Wrapped\r\n  Over Two Lines\r\n \t \r\nWe study   things.\r\n" + words(25) + "\r\n",
			want: []string{"paper f:1 A Title Wrapped Over Two Lines"},
		},
		{
			name: "a long title without a full stop is still a title",
			in:   strings.TrimSuffix(words(30), ".") + "\n\n" + abs + "\n",
			want: []string{"paper f:1 " + strings.TrimSuffix(words(30), ".")},
		},
		{
			name: "a short abstract is not an abstract",
			in:   "First\n\n" + abs + "\n\nSecond\n\nToo short to be an abstract.\n\nThird\n\n" + abs + "\n",
			want: []string{
				"paper f:1 First",
				`error f:5: title:` + titleHex("Second") + `: title "Second" has no abstract after it: the next paragraph, at line 7, is not an abstract (6 words)`,
				`error f:7: title:` + titleHex("Too short to be an abstract.") + `: title "Too short to be an abstract." has no abstract after it: the next paragraph, at line 9, is not an abstract (1 words)`,
				"paper f:9 Third",
			},
		},
		{
			name: "a withdrawn paper's one-sentence abstract is one error at its title, also first in the file",
			in:   "Mar 19\n\nA Withdrawn Result\n\n" + withdrawn + "\n\nSecond\n\n" + abs + "\n",
			want: []string{
				`error f:3: title:` + titleHex("A Withdrawn Result") + `: the abstract of "A Withdrawn Result", at line 5, has 16 words, fewer than 20`,
				"paper f:7 Second",
			},
		},
		{
			name: "a short abstract after the first paper and at the end of the file",
			in:   "First\n\n" + abs + "\n\nA Withdrawn Result\n\n" + withdrawn + "\n\nSecond\n\n" + abs + "\n\nLast Withdrawn\n\n" + withdrawn + "\n",
			want: []string{
				"paper f:1 First",
				`error f:5: title:` + titleHex("A Withdrawn Result") + `: the abstract of "A Withdrawn Result", at line 7, has 16 words, fewer than 20`,
				"paper f:9 Second",
				`error f:13: title:` + titleHex("Last Withdrawn") + `: the abstract of "Last Withdrawn", at line 15, has 16 words, fewer than 20`,
			},
		},
		{
			name: "a title ending in a question mark after furniture is still a title",
			in:   "Mar 19\n\nIs Attention All You Need for Long Context Retrieval Tasks?\n\n" + abs + "\n",
			want: []string{"paper f:3 Is Attention All You Need for Long Context Retrieval Tasks?"},
		},
		{
			name: "a title ending in a question mark after a title without abstract",
			in:   "First\n\n" + abs + "\n\nOrphan\n\nIs Attention All You Need for Long Context Retrieval Tasks?\n\n" + abs + "\n",
			want: []string{
				"paper f:1 First",
				`error f:5: title:` + titleHex("Orphan") + `: title "Orphan" has no abstract after it: the next paragraph, at line 7, is not an abstract (10 words)`,
				"paper f:7 Is Attention All You Need for Long Context Retrieval Tasks?",
			},
		},
		{
			name: "only furniture: one error says no paper was found",
			in:   "new\n\nSubscribe\n\nMar 19\n",
			want: []string{"error f:1: no papers found: 3 short paragraphs and no abstract; a paper is a title line, a blank line and an abstract paragraph of at least 20 words"},
		},
		{
			// It said "2 short paragraphs" and asked for 20 words, which the abstract had: a
			// paragraph of up to 40 words that ends no sentence reads as a title.
			name: "only a title and an abstract without a full stop: the error names the abstract and what it lacks",
			in:   "A Title\n\n" + strings.TrimSuffix(words(22), ".") + "\n",
			want: []string{"error f:1: no papers found: 2 short paragraphs and no abstract; a paper is a title line, a blank line and an abstract paragraph of at least 20 words" +
				"; the paragraph at line 3 has 22 words but ends no sentence, so it reads as a title: end the abstract with a full stop"},
		},
		{
			// Too long for a title by its lines (more than 3), though not by its words.
			name: "an abstract of four lines without a full stop is an abstract",
			in:   "A Title\n\n" + strings.Join(fourLines, " ") + "\n",
			want: []string{"paper f:1 A Title"},
		},
		{
			name: "invalid UTF-8 in a title is reported and the next paper comes",
			in:   "Bad \xff Title\n\n" + abs + "\n\nGood\n\n" + abs + " Naïve café, Schrödinger.",
			want: []string{
				"error f:1: title is not valid UTF-8 (byte 5)" + wantLatin1Hint,
				"paper f:5 Good",
			},
		},
		{
			name: "an abstract over the limit is reported",
			in:   "Big\n\n" + words(20) + " " + strings.Repeat("x", 40000) + "\n\nSmall\n\n" + abs,
			want: []string{
				"error f:1: title:" + titleHex("Big") + ": abstract is 40101 bytes, limit 32768",
				"paper f:5 Small",
			},
		},
		{
			name: "a long paragraph before the first paper is not furniture",
			in:   strings.Repeat("no full stop in here ", 10) + "\n\nA Title\n\n" + abs,
			want: []string{
				"error f:1: abstract paragraph (50 words) has no title line before it",
				"paper f:3 A Title",
			},
		},
		{
			name: "a paragraph that is neither title nor abstract after the first paper is reported",
			in:   "First\n\n" + abs + "\n\nHome\nAbout\nBlog\nContact us\n\nSecond\n\n" + abs,
			want: []string{
				"paper f:1 First",
				"error f:5: paragraph is neither a title nor an abstract (4 lines, 5 words, 26 bytes)",
				"paper f:10 Second",
			},
		},
		{
			// Written without spaces: the characters count two to a word, and "。", "．" end
			// sentences.
			name: "chinese and japanese papers, and a short japanese abstract",
			in: "基于稀疏专家路由的大规模语言模型训练方法\n\n" +
				"近年来，大规模语言模型取得了显著进展。然而，训练成本仍然很高。本文提出了一种基于稀疏专家路由的新方法，" +
				"能够在保持模型质量的同时将训练成本降低百分之四十。实验结果表明，该方法在多个基准测试上优于现有方法。\n\n" +
				"大規模言語モデルのための効率的な学習手法\n\n" +
				"本研究では，疎なエキスパートルーティングに基づく新しい学習手法を提案する．学習コストを四割削減する．\n\n" +
				"撤回された論文\n\n本論文は著者の申し出により撤回された。\n\n" +
				"第三篇论文\n\n本文提出了一种新的训练方法，并在多个基准测试上验证了它的效果和效率，结果优于现有方法。\n",
			want: []string{
				"paper f:1 基于稀疏专家路由的大规模语言模型训练方法",
				"paper f:5 大規模言語モデルのための効率的な学習手法",
				`error f:9: title:` + titleHex("撤回された論文") + `: the abstract of "撤回された論文", at line 11, has 9 words, fewer than 20`,
				"paper f:13 第三篇论文",
			},
		},
		{
			name: "a short menu before the first paper is furniture",
			in:   "Home\nAbout\nBlog\nContact us\n\nFirst\n\n" + abs,
			want: []string{"paper f:6 First"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, events := readString(t, tc.in, "f", Options{Format: Text})
			equalEvents(t, events, tc.want)
		})
	}
}

func TestTextParagraphOverRecordLimit(t *testing.T) {
	t.Parallel()
	in := "Huge\n\n" + strings.Repeat("word ", 2000) + "\n\nNext\n\n" + words(30)
	_, _, events := readString(t, in, "f", Options{Format: Text, MaxRecordBytes: 4096})
	equalEvents(t, events, []string{
		"error f:1: title:" + titleHex("Huge") + ": abstract is more than 4096 bytes, limit 32768",
		"paper f:5 Next",
	})
	// Over the limit in lines that are each within it: cut as it is read, and refused so, not
	// taken cut.
	lines := strings.Repeat(strings.Repeat("word ", 200)+"\n", 5)
	_, _, events = readString(t, "Huge\n\n"+lines+"\nNext\n\n"+words(30), "f", Options{Format: Text, MaxRecordBytes: 4096})
	equalEvents(t, events, []string{
		"error f:1: title:" + titleHex("Huge") + ": abstract is more than 4096 bytes, limit 32768",
		"paper f:9 Next",
	})
}

func TestEndsSentence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"ARMOR v0.1: Empowering Models", false},
		{"We do it. Then more", true},
		{"Ends here.", true},
		{"Is it (really)?", true},
		{`He said "no."`, true},
		{"e.g.,x", false},
		{"Title: no stop", false},
		{"本文提出了一种新方法。实验表明它有效", true},
		{"提案手法を示す．実験で確かめた", true},
		{"هل يمكن ذلك؟ نعم", true},
		{"यह एक वाक्य है। और", true},
		{"大規模言語モデルのための効率的な学習手法", false},
	} {
		if got := endsSentence(tc.in); got != tc.want {
			t.Errorf("endsSentence(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// titleHex is the hex part of paper.TitleID(s).
func titleHex(s string) string {
	return strings.TrimPrefix(titleID(s), "title:")
}
