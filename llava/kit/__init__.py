"""The experiment kit: the whole method on a laptop. easy-vqa data (a four-task mixture, the demo set), the `small`
preset's parts (SmolLM2-135M with a shape/colour tower and a word-aligned projector, trained and cached here), the
scheme comparison with its statistics, tables and plots, the follow-up analyses, and `make demo`. The core packages
import nothing from here; `load_model("small")` imports the preset when it is asked for."""
