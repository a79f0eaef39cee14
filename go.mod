module github.com/lanpairing/pairing

go 1.26.8

require (
	github.com/pquerna/otp v1.5.0
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.49.0
	golang.org/x/time v0.16.0
)

require github.com/boombuler/barcode v1.0.1-0.20190219062509-6c824513bacc // indirect
