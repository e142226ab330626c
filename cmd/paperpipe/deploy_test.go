package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v4"
)

// TestK8sServerRequiresATokenFromASecret: deploy/k8s's server listens on the pod's IP, where
// anything that reaches the Service could queue papers the workers pay for: the manifest must
// give it PAPERPIPE_API_TOKEN, from a Secret, not optional (a missing Secret keeps the pod
// from starting instead of leaving writes open).
func TestK8sServerRequiresATokenFromASecret(t *testing.T) {
	t.Parallel()
	type envVar struct {
		Name      string
		Value     *string
		ValueFrom struct {
			SecretKeyRef *struct {
				Name, Key string
				Optional  *bool
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	type manifest struct {
		Kind     string
		Metadata struct{ Name string }
		Spec     struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name string
						Args []string
						Env  []envVar
					}
				}
			}
		}
	}
	data, err := os.ReadFile("../../deploy/k8s/serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	servers := 0
	for {
		var m manifest
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("serve.yaml: %v", err)
		}
		for _, c := range m.Spec.Template.Spec.Containers {
			if !slices.Contains(c.Args, "serve") {
				continue
			}
			servers++
			i := slices.IndexFunc(c.Env, func(e envVar) bool { return e.Name == "PAPERPIPE_API_TOKEN" })
			if i < 0 {
				t.Errorf("%s %s, container %s (%s): no PAPERPIPE_API_TOKEN", m.Kind, m.Metadata.Name, c.Name, strings.Join(c.Args, " "))
				continue
			}
			ref := c.Env[i].ValueFrom.SecretKeyRef
			if c.Env[i].Value != nil || ref == nil || ref.Name == "" || ref.Key == "" || (ref.Optional != nil && *ref.Optional) {
				t.Errorf("%s %s: PAPERPIPE_API_TOKEN is %+v, want a required secretKeyRef", m.Kind, m.Metadata.Name, c.Env[i])
			}
		}
	}
	if servers == 0 {
		t.Error("serve.yaml runs no `paperpipe serve`")
	}
}
