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
		object := map[string]any{}
		if err := decoder.Decode(&object); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if len(object) == 0 {
			continue
		}
		result, err := status.Compute(&unstructured.Unstructured{Object: object})
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
