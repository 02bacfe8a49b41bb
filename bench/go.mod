module swimlane.dev/swimlane/bench

go 1.26
