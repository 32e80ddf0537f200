"""`python -m llava.demo`: the command earlier versions documented for `make demo`; the demo is llava.kit.demo."""

from llava.kit.demo import main

if __name__ == "__main__":
    main()
