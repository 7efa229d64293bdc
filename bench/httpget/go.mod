module sluice/bench/httpget

go 1.22
