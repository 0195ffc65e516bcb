// Command kstatus prints kstatus's verdict on Kubernetes objects: for each object read from
// stdin (JSON or YAML, several separated by "---" or concatenated), one JSON line with what
// sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute returns. The tests ask the library itself,
// so that what Flux, cli-utils and `kubectl wait` users see is checked, not our reading of it.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	decoder := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(in), 4096)
	encoder := json.NewEncoder(out)
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		// As a client reads it: integers stay int64, which kstatus's field lookups insist on.
		object := &unstructured.Unstructured{}
		if err := object.UnmarshalJSON(raw); err != nil {
			return err
		}
		result, err := status.Compute(object)
		if err != nil {
			return err
		}
		conditions := result.Conditions
		if conditions == nil {
			conditions = []status.Condition{}
		}
		if err := encoder.Encode(verdict{result.Status.String(), result.Message, conditions}); err != nil {
			return err
		}
	}
}
