"""Browser chat: `python -m llava.serve.web --model-path CKPT [--model-path NAME=CKPT2 ...] [--port 7860]`.

Chat tab: image upload, multi-turn, streamed replies, regenerate / stop / clear, sampling settings, and for routed
checkpoints what the routers did (each reply token coloured by its top expert, a layer x expert heatmap). A/B tab:
two checkpoints (or two task heads) answer the same image and question side by side. Errors are shown as what
happened (model still loading, out of memory, image too large, prompt too long).
"""

from __future__ import annotations

from llava.extras import require_extra

require_extra("gradio", "serve", "the web chat (llava.serve.web)")

import gradio as gr  # noqa: E402

from llava.serve.routing_view import SUMMED, heatmap_html, tokens_html  # noqa: E402
from llava.serve.web_chat import WebChat  # noqa: E402


class UploadedImage(gr.Image):
    """An image box that hands the upload over as its file path, unopened. gr.Image's own preprocess opens it with PIL
    first (and converts its mode), so a decompression bomb or an unreadable file failed inside gradio, with a
    traceback in the log and a bare "Error" in the page; WebChat decodes it with the API's checks instead. Build it
    with type="filepath", image_mode=None."""

    def get_block_name(self) -> str:
        return "image"  # the page draws it with gr.Image's own front end (gradio's documented override)

    def preprocess(self, payload):
        if payload is None or payload.path is None:  # a base64 payload: gradio writes it to a file first
            return super().preprocess(payload)
        return str(payload.path)


CSS = ".routing-tokens span{font-family:monospace} #error-box{color:#b00020}"


def build_app(web: WebChat) -> gr.Blocks:
    with gr.Blocks(title="llava-asymlora") as app:
        gr.Markdown("## llava-asymlora")
        status = gr.Markdown(web.status(), elem_id="status")
        with gr.Tab("Chat"):
            with gr.Row():
                with gr.Column(scale=1):
                    model = gr.Dropdown(web.choices(), value=(web.choices() or [None])[0],
                                        label="model (checkpoint:task head)", elem_id="model",
                                        allow_custom_value=True)
                    refresh = gr.Button("refresh models", size="sm")
                    image = UploadedImage(type="filepath", image_mode=None, label="image", elem_id="image", height=240)
                    with gr.Accordion("sampling", open=False):
                        temperature = gr.Slider(0, 2, value=0, step=0.05, label="temperature (0: greedy)")
                        top_p = gr.Slider(0.05, 1, value=1, step=0.05, label="top p")
                        max_tokens = gr.Slider(1, web.cap, value=min(128, web.cap), step=1, label="max new tokens")
                with gr.Column(scale=2):
                    chatbot = gr.Chatbot(label="conversation", elem_id="chatbot", height=360)
                    message = gr.Textbox(label="message", placeholder="ask about the image", elem_id="message")
                    with gr.Row():
                        send = gr.Button("send", variant="primary", elem_id="send")
                        regenerate = gr.Button("regenerate", elem_id="regenerate")
                        stop = gr.Button("stop", elem_id="stop")
                        clear = gr.Button("clear", elem_id="clear")
                    error = gr.Markdown("", elem_id="error-box")
            with gr.Accordion("routing of the last reply", open=True):
                view = gr.Dropdown([SUMMED], value=SUMMED, label="colour tokens by", elem_id="routing-view",
                                   allow_custom_value=True)
                tokens = gr.HTML(tokens_html([], None), elem_id="routing-tokens")
                heatmap = gr.HTML(heatmap_html(None), elem_id="routing-heatmap")
            routing_state = gr.State(None)
        with gr.Tab("A/B"):
            with gr.Row():
                model_a = gr.Dropdown(web.choices(), value=(web.choices() or [None])[0], label="model A", allow_custom_value=True,
                                      elem_id="model-a")
                model_b = gr.Dropdown(web.choices(), value=(web.choices() or [None])[-1], label="model B", allow_custom_value=True,
                                      elem_id="model-b")
            with gr.Row():
                ab_image = UploadedImage(type="filepath", image_mode=None, label="image", elem_id="ab-image",
                                         height=200)
                with gr.Column():
                    question = gr.Textbox(label="question", elem_id="ab-question")
                    ask = gr.Button("ask both", variant="primary", elem_id="ab-ask")
            with gr.Row():
                answer_a = gr.Textbox(label="answer A", elem_id="answer-a", interactive=False)
                answer_b = gr.Textbox(label="answer B", elem_id="answer-b", interactive=False)
            with gr.Row():
                heat_a, heat_b = gr.HTML(elem_id="heat-a"), gr.HTML(elem_id="heat-b")
            ab_error = gr.Markdown("", elem_id="ab-error")

        settings = [temperature, top_p, max_tokens]
        chat_out = [chatbot, message, error, tokens, heatmap, routing_state, view]
        sent = send.click(web.chat, [model, image, chatbot, message, *settings, view], chat_out, api_name="chat")
        submitted = message.submit(web.chat, [model, image, chatbot, message, *settings, view], chat_out,
                                   api_name=False)
        again = regenerate.click(web.regenerate, [model, image, chatbot, *settings, view], chat_out,
                                 api_name="regenerate")
        stop.click(web.stop, None, None, cancels=[sent, submitted, again], api_name="stop")
        clear.click(lambda: ([], "", "", tokens_html([], None), heatmap_html(None), None,
                             gr.update(choices=[SUMMED], value=SUMMED)), None, chat_out, api_name="clear")
        view.change(web.routing, [routing_state, view], [tokens, heatmap, routing_state], api_name=False)
        ask.click(web.ab, [model_a, model_b, ab_image, question, *settings],
                  [answer_a, answer_b, heat_a, heat_b, ab_error], api_name="ab")

        def refreshed():
            choices = web.choices()
            pick = gr.update(choices=choices)
            return web.status(), pick, pick, pick

        refresh.click(refreshed, None, [status, model, model_a, model_b], api_name=False)
        app.load(refreshed, None, [status, model, model_a, model_b], api_name=False)
        # while models load, the page asks every 2 s and stops asking once none is pending; a reply also refreshes
        # the status (a page opened while loading would otherwise say "still loading" until reloaded)
        loading = gr.Timer(2.0, active=web.registry.loading)

        def tick():
            return (*refreshed(), gr.Timer(active=web.registry.loading))

        loading.tick(tick, None, [status, model, model_a, model_b, loading], api_name=False)
        app.load(lambda: gr.Timer(active=web.registry.loading), None, loading, api_name=False)
        for event in (sent, submitted, again):
            event.then(web.status, None, status, api_name=False)
    return app


def main(argv=None):
    from llava.serve.options import server_parser, start_serving

    ap = server_parser(__doc__, port=7860)
    args = ap.parse_args(argv)
    registry, engine, limits, _ = start_serving(ap, args)
    app = build_app(WebChat(registry, engine, limits, args.max_tokens))
    app.queue(default_concurrency_limit=args.max_batch, max_size=args.max_queue)
    print(f"web chat at http://{args.host}:{args.port} ({len(registry.pending)} model(s) loading)", flush=True)
    app.launch(server_name=args.host, server_port=args.port, css=CSS, show_error=True, quiet=True,
               footer_links=["api"])


if __name__ == "__main__":
    main()
