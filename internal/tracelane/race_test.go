//go:build race

package tracelane

const raceEnabled = true
