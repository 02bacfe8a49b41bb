//go:build !race

package tracelane

const raceEnabled = false
