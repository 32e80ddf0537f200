"""Serving a trained model: the engine (batched generation, routing trace) behind the OpenAI-compatible API
(`python -m llava.serve.api`) and the gradio web app (`python -m llava.serve.web`), and the terminal chat
(`python -m llava.serve.cli`)."""
