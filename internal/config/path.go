package config

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FindPath returns the node at path in root, a document's root mapping node (a DocumentNode
// is entered too). path is dotted keys with list indexes, e.g.
// "spec.http[0].route[0].destination.subset". It returns the key node for a mapping key (so
// its Line is the key's line) and the item node for an index; nil if the path is absent or
// malformed. Aliases are followed.
//
// Keys may contain dots ("app.kubernetes.io/name"): at each mapping the longest key that
// matches the rest of the path wins, so paths stay as readable as the YAML.
func FindPath(root *yaml.Node, path string) *yaml.Node {
	var found *yaml.Node
	n := deref(root)
	for rest := path; rest != ""; {
		if n == nil {
			return nil
		}
		if rest[0] == '[' {
			end := strings.IndexByte(rest, ']')
			if end < 0 || n.Kind != yaml.SequenceNode {
				return nil
			}
			i, err := strconv.Atoi(rest[1:end])
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			found = n.Content[i]
			n, rest = deref(found), rest[end+1:]
			continue
		}
		rest = strings.TrimPrefix(rest, ".")
		if n.Kind != yaml.MappingNode {
			return nil
		}
		best, bestLen := -1, -1
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := keyName(n.Content[i])
			if len(k) > bestLen && strings.HasPrefix(rest, k) &&
				(len(rest) == len(k) || rest[len(k)] == '.' || rest[len(k)] == '[') {
				best, bestLen = i, len(k)
			}
		}
		if best < 0 {
			return nil
		}
		found = n.Content[best]
		n, rest = deref(n.Content[best+1]), rest[bestLen:]
	}
	return found
}

// deref returns the node n stands for: a document's content, an alias's target.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch {
		case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
			n = n.Content[0]
		case n.Kind == yaml.DocumentNode:
			return nil
		case n.Kind == yaml.AliasNode:
			n = n.Alias
		default:
			return n
		}
	}
	return nil
}

// keyName is the text of a mapping key ("" for a non-scalar key).
func keyName(k *yaml.Node) string {
	if k = deref(k); k == nil || k.Kind != yaml.ScalarNode {
		return ""
	}
	return k.Value
}

// lookup returns the key and value nodes of key in mapping m, nil if absent.
func lookup(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m = deref(m); m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if keyName(m.Content[i]) == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}
