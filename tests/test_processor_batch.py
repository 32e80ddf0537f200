"""LLaVA-format conversations through a family's own processor and chat template (llava/data/processor_batch.py): the
labels are exactly the replies, the same whether transformers' assistant mask finds them (a template with
`{% generation %}`) or the rendered prefixes do (the same template unmarked, as most released ones are), on
multi-turn, multi-image and text-only samples in one batch; the batch trains the family's model."""

import logging

import pytest
import torch
from PIL import Image

from llava.constants import IGNORE_INDEX
from llava.data.processor_batch import Conversation, collate, to_messages
from llava.data.sources import DataError
from tests.helpers.vlm_families import TEMPLATES, WITH_PROCESSOR, build_model, build_processor, without_markers

RED, BLUE = Image.new("RGB", (70, 50), "red"), Image.new("RGB", (40, 60), "blue")


def conversations():
    return [
        Conversation([(0, "<image>\nWhat colour is it?"), (1, "red"), (0, "And its shape?"), (1, "a square")],
                     [RED], "a.json: sample multi-turn"),
        Conversation([(0, "Compare <image> with <image>."), (1, "red, then blue")], [RED, BLUE],
                     "a.json: sample two-images"),
        Conversation([(0, "Say hi."), (1, "hi")], [], "a.json: sample text-only"),
    ]


def processor_for(family, marked):
    processor, image_id = build_processor(family)
    template = TEMPLATES[family]
    processor.chat_template = template if marked else without_markers(template)
    processor.tokenizer.padding_side = "right"
    return processor, image_id


def supervised_text(processor, batch, row):
    ids = batch["labels"][row]
    return processor.tokenizer.decode(ids[ids != IGNORE_INDEX])


END = {"llava_next": "</s>", "idefics3": "<end_of_utterance>\n", "gemma3": "<end_of_turn>\n"}


@pytest.mark.parametrize("family", WITH_PROCESSOR)
def test_labels_are_the_replies_with_or_without_generation_markers(family):
    marked, image_id = processor_for(family, marked=True)
    unmarked, _ = processor_for(family, marked=False)
    a, b = collate(marked, conversations()), collate(unmarked, conversations())
    assert set(a) == set(b) and torch.equal(a["input_ids"], b["input_ids"])
    assert torch.equal(a["labels"], b["labels"]), family  # our spans == transformers' assistant mask
    lead = " " if family in ("llava_next", "idefics3") else ""
    end = END[family]
    assert supervised_text(marked, a, 0) == f"{lead}red{end}{lead}a square{end}"
    assert supervised_text(marked, a, 1) == f"{lead}red, then blue{end}"
    assert supervised_text(marked, a, 2) == f"{lead}hi{end}"
    # the images became the processor's tokens (tiles, soft tokens), never supervised; padding never supervised
    assert (a["input_ids"][0] == image_id).sum() > 0 and (a["input_ids"][2] == image_id).sum() == 0
    assert not ((a["labels"] == image_id).any() or (a["labels"][a["attention_mask"] == 0] != IGNORE_INDEX).any())
    # the batch is the model's: one step of loss on the replies
    model = build_model(family, image_id=image_id)
    loss = model(**b).loss
    assert torch.isfinite(loss)


def test_image_tags_must_match_the_images():
    with pytest.raises(DataError, match=r"^a.json: sample 7: 2 <image> tags for 1 images"):
        to_messages(Conversation([(0, "<image> <image>"), (1, "x")], [RED], "a.json: sample 7"))
    with pytest.raises(DataError, match="a reply contains <image>"):
        to_messages(Conversation([(0, "<image> hi"), (1, "<image>")], [RED, RED], "a.json: sample 8"))


def test_truncation_never_cuts_an_image_and_is_logged_for_text(caplog):
    processor, _ = processor_for("gemma3", marked=False)
    with pytest.raises(DataError, match=r"^a.json: sample multi-turn: model_max_length=12 is shorter"):
        collate(processor, conversations()[:1], max_length=12)
    only_long = Conversation([(0, "Say " + "hi " * 30), (1, "hi")], [], "a.json: sample long")
    with pytest.raises(DataError, match="^a.json: sample long: no reply token to supervise .* model_max_length=12"):
        collate(processor, [only_long], max_length=12)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="llava.data.processor_batch"):
        assert collate(processor, conversations(), max_length=512)["input_ids"].shape[1] < 512
        assert not caplog.records  # nothing cut, nothing said
        cut = Conversation([(0, "Say hi."), (1, "hi"), (0, "Say " + "hi " * 30), (1, "hi")], [], "a.json: sample cut")
        batch = collate(processor, [cut], max_length=40)
    assert [r.getMessage() for r in caplog.records] == ["a.json: sample cut: truncated to model_max_length=40"]
    assert batch["input_ids"].shape == batch["labels"].shape == (1, 40)
    assert supervised_text(processor, batch, 0) == "hi<end_of_turn>\n"  # the first reply, whole; the second cut off


def test_records_with_several_images_reach_a_familys_processor_and_are_refused_by_llava_1_5(tmp_path, tiny_tokenizer):
    import json

    from llava.data import ProcessorCollator, SupervisedDataset

    RED.save(tmp_path / "red.png")
    BLUE.save(tmp_path / "blue.png")
    rows = [{"id": "two", "image": ["red.png", "blue.png"], "conversations": [
                {"from": "human", "value": "Compare <image> with <image>."}, {"from": "gpt", "value": "red, then blue"}]},
            {"id": "tag-last", "image": "red.png", "conversations": [
                {"from": "human", "value": "What colour?\n<image>"}, {"from": "gpt", "value": "red"}]},
            {"id": "text", "conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "hi"}]}]
    data = tmp_path / "d.json"
    data.write_text(json.dumps(rows))
    processor, image_id = processor_for("gemma3", marked=False)
    dataset = SupervisedDataset(str(data), processor.tokenizer, image_folder=str(tmp_path), processor=processor)
    items = [dataset[i] for i in range(3)]
    assert [len(it["conversation"].images) for it in items] == [2, 1, 0]
    assert items[1]["conversation"].turns[0] == (0, "What colour?\n<image>")  # the record's placement is kept
    batch = ProcessorCollator(processor, 512)(items)
    assert batch["pixel_values"].shape[0] == 3 and (batch["input_ids"] == image_id).sum() == 3 * 4
    assert [supervised_text(processor, batch, row) for row in range(3)] == [
        "red, then blue<end_of_turn>\n", "red<end_of_turn>\n", "hi<end_of_turn>\n"]
    assert dataset.modality_lengths[0] > dataset.modality_lengths[1] > 0 > dataset.modality_lengths[2]

    llava = SupervisedDataset(str(data), tiny_tokenizer, image_folder=str(tmp_path), image_seq_length=4)
    with pytest.raises(DataError, match=r"d.json: sample two: 2 images: LLaVA-1.5 takes one per sample"):
        llava[0]
    rows[0]["conversations"][0]["value"] = "Compare <image> with the other."
    data.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=r"sample two .*: 2 images need 2 <image> tags, one where each goes; the text has 1"):
        SupervisedDataset(str(data), tiny_tokenizer, image_folder=str(tmp_path))
