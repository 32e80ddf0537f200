"""The web app's behaviour, apart from its layout (web.py): each WebChat method is one UI event, streaming its
outputs as a generator. Requests go through the same checks and engine as the API."""

from __future__ import annotations

import os
import queue
import threading

import gradio as gr

from llava.serve.engine import Engine, Job
from llava.serve.errors import ServeError
from llava.serve.images import MB, ImageLimits, decode_image
from llava.serve.jobs import build_job
from llava.serve.models import ModelRegistry
from llava.serve.routing_view import SUMMED, heatmap_html, layer_choices, token_pieces, tokens_html


class WebChat:
    """The app's behaviour, apart from its layout: each method is one UI event."""

    def __init__(self, registry: ModelRegistry, engine: Engine, limits: ImageLimits, cap: int):
        self.registry, self.engine, self.limits, self.cap = registry, engine, limits, cap
        self._running: dict[str, list[Job]] = {}  # session -> its jobs in flight (the Stop button cancels them)

    def choices(self) -> list[str]:
        return self.registry.ids() + list(self.registry.pending)

    def status(self) -> str:
        parts = [f"**{m.name}**: {m.scheme}, {m.describe()['experts']} expert(s), template {m.generator.template.name}"
                 + (f", task heads {', '.join(m.task_names)}" if m.task_names else "")
                 for m in self.registry.models.values()]
        parts += [f"**{n}**: still loading" for n in self.registry.pending]
        parts += [f"**{n}**: failed to load ({why})" for n, why in self.registry.failed.items()]
        return " · ".join(parts) or "no models"

    def _start(self, session: str, model_id, turns, image, temperature, top_p, max_tokens) -> tuple[Job, queue.Queue]:
        if not model_id:
            raise ServeError("pick a model first")
        served, task_id = self.registry.resolve(model_id)
        image = self._decode(image)
        job = build_job(served, task_id, turns, 0 if image is not None else None, image, int(max_tokens), self.cap,
                        float(temperature), float(top_p), trace=served.routed)
        pieces: queue.Queue = queue.Queue()
        job.on_text = pieces.put
        job.result.add_done_callback(lambda _: pieces.put(None))
        self._running.setdefault(session, []).append(job)
        self.engine.submit(job)
        return job, pieces

    def _decode(self, path: str | None):
        """An upload arrives as its file path, unopened (web.py's UploadedImage): it goes through the API's decoder
        and limits, so a bomb or a corrupt file is refused with the reason shown in the app."""
        if path is None:
            return None
        size = os.path.getsize(path)
        if size > self.limits.max_bytes:
            raise ServeError(f"the uploaded image is {size / MB:.1f} MB; this server takes images up to "
                             f"{self.limits.max_bytes / MB:.0f} MB (--max-image-mb)")
        with open(path, "rb") as f:
            return decode_image(f.read(), self.limits, where="the uploaded image")

    def _finish(self, session: str, job: Job):
        jobs = self._running.get(session, [])
        if job in jobs:
            jobs.remove(job)
        return job.result.result()

    def stop(self, request: gr.Request) -> None:
        for job in self._running.pop(request.session_hash, []):
            job.cancelled.set()

    def chat(self, model_id, image, history, message, temperature, top_p, max_tokens, view, request: gr.Request):
        """Streams (chatbot, textbox, error, tokens html, heatmap html, routing state, view choices)."""
        history = list(history or [])
        keep = gr.update()
        if not (message or "").strip():
            yield history, message, "", keep, keep, keep, keep
            return
        turns = [(0 if m["role"] == "user" else 1, _text(m["content"])) for m in history] + [(0, message)]
        try:
            job, pieces = self._start(request.session_hash, model_id, turns, image, temperature, top_p, max_tokens)
        except ServeError as e:
            yield history, message, f"**Error:** {e.message}", keep, keep, keep, keep
            return
        history += [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        yield history, "", "", keep, keep, keep, keep
        try:
            while (piece := pieces.get()) is not None:
                history[-1]["content"] += piece
                yield history, "", "", keep, keep, keep, keep
            result = self._finish(request.session_hash, job)
        except ServeError as e:
            yield history, "", f"**Error:** {e.message}", keep, keep, keep, keep
            return
        finally:
            job.cancelled.set()  # Stop pressed or page closed: the engine drops the row
        history[-1]["content"] = result.text
        state = None
        if result.routing is not None:
            state = {"pieces": token_pieces(job.served.generator.tokenizer, result.token_ids),
                     "routing": result.routing.tolist()}
        view = view if view in layer_choices(state and state["routing"]) else SUMMED
        yield (history, "", "", *self.routing(state, view),
               gr.update(choices=layer_choices(state and state["routing"]), value=view))

    def routing(self, state, view):
        if not state:
            return tokens_html([], None), heatmap_html(None), state
        return tokens_html(state["pieces"], state["routing"], view), heatmap_html(state["routing"]), state

    def regenerate(self, model_id, image, history, temperature, top_p, max_tokens, view, request: gr.Request):
        history = list(history or [])
        while history and history[-1]["role"] == "assistant":
            history.pop()
        if not history:
            yield history, "", "**Error:** nothing to regenerate", gr.update(), gr.update(), gr.update(), gr.update()
            return
        message = _text(history.pop()["content"])
        yield from self.chat(model_id, image, history, message, temperature, top_p, max_tokens, view, request)

    def ab(self, model_a, model_b, image, question, temperature, top_p, max_tokens, request: gr.Request):
        """Streams (answer A, answer B, heatmap A, heatmap B, error): both checkpoints get the same prompt."""
        answers, heat = ["", ""], [heatmap_html(None), heatmap_html(None)]
        if not (question or "").strip():
            yield *answers, *heat, "**Error:** ask a question"
            return
        try:
            started = [self._start(request.session_hash, m, [(0, question)], image, temperature, top_p, max_tokens)
                       for m in (model_a, model_b)]
        except ServeError as e:
            yield *answers, *heat, f"**Error:** {e.message}"
            return
        merged: queue.Queue = queue.Queue()
        for side, (_, pieces) in enumerate(started):
            threading.Thread(target=_forward, args=(pieces, merged, side), daemon=True).start()
        open_sides = 2
        while open_sides:
            side, piece = merged.get()
            if piece is None:
                open_sides -= 1
                continue
            answers[side] += piece
            yield *answers, *heat, ""
        try:
            results = [self._finish(request.session_hash, job) for job, _ in started]
        except ServeError as e:
            yield *answers, *heat, f"**Error:** {e.message}"
            return
        finally:
            for job, _ in started:
                job.cancelled.set()
        names = [model_a, model_b]
        yield (*[r.text for r in results],
               *[heatmap_html(r.routing, f"{n}: gate mass") if r.routing is not None else heatmap_html(None)
                 for r, n in zip(results, names)], "")


def _forward(source: queue.Queue, target: queue.Queue, side: int) -> None:
    while True:
        piece = source.get()
        target.put((side, piece))
        if piece is None:
            return


def _text(content) -> str:
    """A chatbot message's text (gradio 6 may hand back a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content or "")
