// Package words phrases counts for messages: "1 account", "3 accounts".
package words

import "fmt"

// Plural is n and noun, with an s when n is not 1.
func Plural[N ~int | ~int64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
