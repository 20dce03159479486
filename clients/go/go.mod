module kubeq.dev/clients/go

go 1.22
