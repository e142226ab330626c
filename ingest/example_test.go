package ingest_test

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/paperpipe/paperpipe/ingest"
)

func ExampleReader() {
	input := `{"id":"2401.01234v2","title":"Sparse Routing","abstract":"We study routing."}
{"id":"2401.05555","title":"No Abstract","abstract":""}
{"title":"Without an Id","abstract":"The id comes from the title."}
`
	r, err := ingest.NewReader(strings.NewReader(input), "papers.jsonl", ingest.Options{})
	if err != nil {
		panic(err)
	}
	fmt.Println("format:", r.Format())
	for {
		a, err := r.Next()
		if err == io.EOF {
			break
		}
		var bad *ingest.RecordError
		if errors.As(err, &bad) {
			fmt.Println("skipped:", bad) // log it and go on
			continue
		}
		if err != nil {
			panic(err) // I/O error: stop
		}
		fmt.Println(a.ID, a.Source, a.Title)
	}
	// Output:
	// format: jsonl
	// arxiv:2401.01234 papers.jsonl:1 Sparse Routing
	// skipped: papers.jsonl:2: arxiv:2401.05555: abstract is empty
	// title:e3accaad7c9be5bc papers.jsonl:3 Without an Id
}
