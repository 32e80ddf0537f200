"""Data recipes: the AsymLoRA paper's three training sets from the public downloads, as LLaVA JSON with a task label
on every record and a manifest of what went in.

  conversation58k   Table 2: LLaVA-Instruct-150K's conversation_58k.json on local COCO images
  mix665k           Table 3: llava_v1_5_mix665k.json, every record labelled by its source (mix665k.py)
  multidomain       Table 4: VQAv2 (short answers) + a 15k sample of LLaVA-Instruct + VQG (question generation)

`python -m llava.data.recipes NAME --raw DIR --out DIR` writes OUT/train.json and OUT/manifest.json; docs/paper.md
says where each download goes.
"""
