package agent

import (
	"slices"
	"testing"
)

func TestSquatOrderTakesHighestFirst(t *testing.T) {
	got := squatOrder([]int{612, 640, 613, 640, 700})
	want := []int{700, 640, 613, 612}
	if !slices.Equal(got, want) {
		t.Fatalf("squatOrder = %v, want %v", got, want)
	}
}
