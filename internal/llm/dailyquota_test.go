package llm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/internal/openaitest"
)

// Gemini's 429 for a daily quota used up (its QuotaFailure names
// GenerateRequestsPerDayPerProjectPerModel-FreeTier) still carries a retryDelay of seconds,
// but no wait short of the quota's reset (midnight Pacific time) is answered otherwise. It was
// waited out as a per-minute limit: every caller asked again at each retryDelay, for
// MaxRateLimitWait (10 minutes), then "still rate limited", and a worker handed its messages
// back to be asked again all day. It is the account's state, as OpenAI's insufficient_quota is:
// ErrAccount at the first answer, which says it is the daily quota — and a per-minute 429 stays
// rate-limited.
func TestGeminisDailyQuotaIsTheAccountsNotARateLimit(t *testing.T) {
	t.Parallel()
	testDailyQuota(t, openaitest.FlavorGemini, "GenerateRequestsPerDayPerProjectPerModel-FreeTier")
}

// So is OpenRouter's limit of requests a day of its free models ("Rate limit exceeded:
// free-models-per-day. Add 10 credits …"), which resets at midnight UTC; its limit a minute
// ("free-models-per-min") is waited out.
func TestOpenRoutersDailyLimitIsTheAccountsNotARateLimit(t *testing.T) {
	t.Parallel()
	testDailyQuota(t, openaitest.FlavorOpenRouter, "free-models-per-day")
}

func testDailyQuota(t *testing.T, flavor, named string) {
	for _, daily := range []bool{true, false} {
		srv := openaitest.Start(t, openaitest.Config{Flavor: flavor,
			Faults: openaitest.Faults{RateLimit: 1, RetryAfter: 20 * time.Millisecond, DailyQuota: daily}})
		l := NewLimiter(LimiterConfig{})
		api, retry, _ := Conn{BaseURL: srv.URL(), APIKey: "k", Timeout: 10 * time.Second, Limiter: l}.Open()
		retry.MaxRateLimitWait = 500 * time.Millisecond
		res, err := retry.Do(t.Context(), 0, func(ctx context.Context) error {
			_, err := api.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "gemini-2.5-flash",
				Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Hi."}}})
			return err
		})
		if !daily {
			if Classify(err) != RateLimited || res.Attempts < 2 {
				t.Errorf("per-minute quota: %d attempts, err %v (class %v); want it waited out, then rate-limited", res.Attempts, err, Classify(err))
			}
			continue
		}
		if !errors.Is(err, ErrAccount) || Classify(err) != Account || res.Attempts != 1 {
			t.Errorf("daily quota: %d attempts, err %v (class %v); want ErrAccount at the first answer", res.Attempts, err, Classify(err))
		}
		if err != nil && !strings.Contains(err.Error(), named) {
			t.Errorf("daily quota: err %q does not name the quota used up", err)
		}
	}
}
