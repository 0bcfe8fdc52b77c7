# The two commands of README.md. Everything they need is set up by scripts/lib.sh.
.PHONY: demo test

demo:
	scripts/demo

test:
	scripts/test
