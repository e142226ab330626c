package openaitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// chatRequest holds the fields of CreateChatCompletionRequest the server
// uses; the body has been validated against the schema before parsing.
type chatRequest struct {
	Model               string        `json:"model"`
	Messages            []chatMessage `json:"messages"`
	N                   *int          `json:"n"`
	MaxTokens           *int          `json:"max_tokens"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
	Stream              *bool         `json:"stream"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	txt     string          // Content's text, decoded once by UnmarshalJSON
}

// UnmarshalJSON decodes a message and its text, which the server reads several times per
// request (tokens, answer, ledger key and subject).
func (m *chatMessage) UnmarshalJSON(b []byte) error {
	var raw struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	m.Role, m.Content, m.txt = raw.Role, raw.Content, contentText(raw.Content)
	return nil
}

// text returns the message's text: its string content, or its text parts
// joined by blank lines.
func (m chatMessage) text() string { return m.txt }

// contentText returns the text of a message's content: the string, or the
// text parts joined by blank lines.
func contentText(content json.RawMessage) string {
	var s string
	if json.Unmarshal(content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(content, &parts) != nil {
		return ""
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n\n")
}

// chatResponse is a CreateChatCompletionResponse.
type chatResponse struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []chatChoice    `json:"choices"`
	Usage             completionUsage `json:"usage"`
	ServiceTier       string          `json:"service_tier"`
	SystemFingerprint string          `json:"system_fingerprint"`
}

type chatChoice struct {
	Index        int                 `json:"index"`
	Message      chatResponseMessage `json:"message"`
	FinishReason string              `json:"finish_reason"`
	Logprobs     *struct{}           `json:"logprobs"`
}

type chatResponseMessage struct {
	Role        string  `json:"role"`
	Content     any     `json:"content"`             // a string; Mistral's parts with ReasoningMistralAPI
	Reasoning   string  `json:"reasoning,omitempty"` // with ReasoningField
	Refusal     *string `json:"refusal"`
	Annotations []any   `json:"annotations"`
}

type completionUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
		AudioTokens  int `json:"audio_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens          int `json:"reasoning_tokens"`
		AudioTokens              int `json:"audio_tokens"`
		AcceptedPredictionTokens int `json:"accepted_prediction_tokens"`
		RejectedPredictionTokens int `json:"rejected_prediction_tokens"`
	} `json:"completion_tokens_details"`
}

// tokens estimates the tokens of a text as OpenAI's rule of thumb does:
// one per four characters, rounded up.
func tokens(s string) int {
	return (utf8.RuneCountInString(s) + 3) / 4
}

// serveChat answers POST /v1/chat/completions.
func (s *Server) serveChat(w http.ResponseWriter, r *http.Request, _ []string) {
	s.mu.Lock()
	s.stats.ChatRequests++
	s.mu.Unlock()
	body := s.readJSONBody(w, r, schemaChatRequest)
	if body == nil {
		return
	}
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.invalidRequest(w, fmt.Sprintf("Invalid request body: %v", err))
		return
	}
	if req.Stream != nil && *req.Stream {
		s.invalidRequest(w, "Streaming is not supported by this test server; send \"stream\": false.")
		return
	}
	prompt := promptTokens(req.Messages)
	fault, f := s.drawFault(true)
	if fault == FaultRateLimit {
		s.rateLimited(w, true, req.Model, int64(prompt), f)
		return
	}
	if !s.latency(w, r, s.cfg.ChatLatency) {
		return
	}
	switch fault {
	case FaultServerError:
		s.setRateHeaders(w, true, int64(prompt), false, 0)
		s.serverError(w)
		return
	case FaultTimeout:
		s.setRateHeaders(w, true, int64(prompt), false, 0)
		s.timedOut(w, r, f.TimeoutHold)
		return
	}
	resp := s.completeChat(req, fault == FaultJunk)
	var out []byte
	if reasoningIsOpenAIShape(s.cfg.Reasoning) {
		out = s.marshalValidated(schemaChatResponse, "POST /v1/chat/completions", resp)
	} else {
		out = s.marshalAsIs("POST /v1/chat/completions", resp)
	}
	s.setRateHeaders(w, true, int64(resp.Usage.TotalTokens), false, 0)
	if s.writeResult(w, out, fault) {
		s.deliveredChat(req, resp.Usage)
	}
}

// deliveredChat counts a delivered chat completion.
func (s *Server) deliveredChat(req chatRequest, u completionUsage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.ChatDelivered++
	s.recordDeliveryLocked(chatKey(req), KindChat, chatSubject(req))
	s.stats.PromptTokens += int64(u.PromptTokens)
	s.stats.CompletionTokens += int64(u.CompletionTokens)
}

func promptTokens(msgs []chatMessage) int {
	n := 0
	for _, m := range msgs {
		n += utf8.RuneCountInString(m.text())
	}
	return (n + 3) / 4
}

// completeChat computes the deterministic answer to a chat request.
func (s *Server) completeChat(req chatRequest, junk bool) chatResponse {
	user := ""
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			user = req.Messages[i].text()
			break
		}
	}
	answer := tldr(user)
	if junk {
		answer = junkTLDR(answer)
	}
	finish := "stop"
	limit := req.MaxCompletionTokens
	if limit == nil {
		limit = req.MaxTokens
	}
	if limit != nil && *limit > 0 && tokens(answer) > *limit {
		answer = string([]rune(answer)[:*limit*4])
		finish = "length"
	}
	n := 1
	if req.N != nil && *req.N > 1 {
		n = *req.N
	}
	resp := chatResponse{
		ID:                s.nextID("chatcmpl-openaitest"),
		Object:            "chat.completion",
		Created:           s.clock().Unix(),
		Model:             req.Model,
		ServiceTier:       "default",
		SystemFingerprint: "fp_openaitest",
	}
	content, reasoning := reasonedContent(s.cfg.Reasoning, answer)
	for i := range n {
		resp.Choices = append(resp.Choices, chatChoice{
			Index:        i,
			Message:      chatResponseMessage{Role: "assistant", Content: content, Reasoning: reasoning, Annotations: []any{}},
			FinishReason: finish,
		})
	}
	resp.Usage.PromptTokens = promptTokens(req.Messages)
	resp.Usage.CompletionTokens = n * tokens(answer)
	if s.cfg.Reasoning != "" {
		resp.Usage.CompletionTokens += n * reasoningTokens(answer)
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens + resp.Usage.CompletionTokens
	return resp
}

// maxTLDRWords bounds the words of an answer.
const maxTLDRWords = 25

// tldr answers a user message: the first sentence of its subject paragraph (see
// subjectParagraph) without a paper lead-in, at most 25 words, ending with a period.
func tldr(message string) string {
	para := labelRE.ReplaceAllString(subjectParagraph(message), "")
	words := strings.Fields(dropLeadIn(firstSentence(para)))
	if len(words) == 0 {
		return "The message holds no text to summarize."
	}
	if len(words) > maxTLDRWords {
		words = words[:maxTLDRWords]
	}
	out := strings.TrimRightFunc(strings.Join(words, " "), func(r rune) bool {
		return unicode.IsPunct(r) && r != ')' && r != ']' || unicode.IsSpace(r)
	})
	if out == "" {
		return "The message holds no text to summarize."
	}
	return out + "."
}

// leadInRE matches the lead-in many abstracts open with ("This paper
// presents …", "In this technical report, we …"), which a TL;DR prompt asks
// a model to leave out.
var leadInRE = regexp.MustCompile(`^(?i:(?:in )?(?:this|the) (?:paper|work|study|article|report|technical report|manuscript|letter|note)|the authors)\b[,:]?\s*`)

// dropLeadIn answers the way a model that follows the prompt does: without
// the abstract's lead-in, from the word after it. A sentence that is all
// lead-in stays as it is.
func dropLeadIn(s string) string {
	rest := leadInRE.ReplaceAllString(s, "")
	r, size := utf8.DecodeRuneInString(rest)
	if rest == s || size == 0 || !unicode.IsLetter(r) {
		return s
	}
	return string(unicode.ToUpper(r)) + rest[size:]
}

// labelRE matches a short label opening a paragraph ("Abstract:").
var labelRE = regexp.MustCompile(`^\s*[\pL][\pL ]{0,24}:\s+`)

// titleRE matches a paragraph that is a title line ("Title: …").
var titleRE = regexp.MustCompile(`(?i)^\s*title\s*:`)

// subjectParagraph returns the text of a user message to summarize: what follows its last
// title line ("Title: …"), where prompts such as paperpipe's put the abstract (all of its
// paragraphs, joined), or the longest paragraph of a message without one. (The longest
// paragraph was the instruction itself for an abstract shorter than it.)
func subjectParagraph(s string) string {
	paras := paragraphs(s)
	for i := len(paras) - 1; i >= 0; i-- {
		if titleRE.MatchString(paras[i]) {
			if i == len(paras)-1 {
				break
			}
			return strings.Join(paras[i+1:], " ")
		}
	}
	return longestParagraph(s)
}

// paragraphs returns the blank-line separated paragraphs of s, each on one line.
func paragraphs(s string) []string {
	var out, cur []string
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				out = append(out, strings.Join(cur, " "))
				cur = nil
			}
			continue
		}
		cur = append(cur, strings.TrimSpace(line))
	}
	if len(cur) > 0 {
		out = append(out, strings.Join(cur, " "))
	}
	return out
}

// longestParagraph returns the longest blank-line separated paragraph of s,
// the first of equals.
func longestParagraph(s string) string {
	best, bestLen := "", -1
	for _, p := range paragraphs(s) {
		if n := utf8.RuneCountInString(p); n > bestLen {
			best, bestLen = p, n
		}
	}
	return best
}

// abbreviations end with a period without ending a sentence.
var abbreviations = map[string]bool{
	"e.g.": true, "i.e.": true, "al.": true, "etc.": true, "fig.": true, "figs.": true, "eq.": true,
	"eqs.": true, "vs.": true, "cf.": true, "dr.": true, "mr.": true, "ms.": true, "approx.": true,
	"no.": true, "sec.": true, "ref.": true, "resp.": true, "st.": true, "u.s.": true,
}

// firstSentence returns the first sentence of a paragraph: up to the first
// '.', '!' or '?' that is followed by a space and a capital, a digit or an
// opening mark, and does not end an abbreviation or an initial, or up to a
// full stop between a lower-case letter and a capital ("data.Results").
func firstSentence(p string) string {
	rs := []rune(p)
	for i, r := range rs {
		if r != '.' && r != '!' && r != '?' {
			continue
		}
		if i+1 < len(rs) && !unicode.IsSpace(rs[i+1]) {
			// 3.5, e.g, URLs; but a missing space between a lower-case word
			// and a capitalised one ("data.Results") ends a sentence.
			if r != '.' || i == 0 || !unicode.IsLower(rs[i-1]) || !unicode.IsUpper(rs[i+1]) {
				continue
			}
		}
		j := i + 1
		for j < len(rs) && unicode.IsSpace(rs[j]) {
			j++
		}
		if j < len(rs) && !(unicode.IsUpper(rs[j]) || unicode.IsDigit(rs[j]) || strings.ContainsRune("\"'(“[", rs[j])) {
			continue
		}
		if r == '.' {
			k := i
			for k > 0 && !unicode.IsSpace(rs[k-1]) {
				k--
			}
			word := strings.ToLower(string(rs[k : i+1]))
			if abbreviations[word] || (len([]rune(word)) == 2 && unicode.IsUpper(rs[k])) {
				continue
			}
		}
		return string(rs[:i+1])
	}
	return p
}

// junkTLDR dresses an answer the way chat models do when they ignore the
// instructions: a preamble, markdown bold, quotes, and extra sentences.
func junkTLDR(answer string) string {
	return "Sure! Here's a TL;DR:\n\n**\"" + answer + "\"** This paper makes an important contribution to the field. Let me know if you would like a longer summary!"
}
