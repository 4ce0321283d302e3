"""Small preference pairs in the training schema, shared by the training tests."""

# 9 pairs at batch size 4: two full batches and a remainder of one.
PAIRS = [
    {"pair_id": f"p{i}", "prompt": prompt, "chosen": chosen, "rejected": rejected}
    for i, (prompt, chosen, rejected) in enumerate([
        ("The film opens with", " a warm and gentle scene.", " a dull, grey shot."),
        ("I watched it twice and", " enjoyed it more each time.", " regretted it."),
        ("The soundtrack", " lifts every moment.", " grates on the ear throughout the film."),
        ("Halfway through,", " I was smiling.", " I left."),
        ("The lead actor", " carries the story with ease.", " seems lost."),
        ("Its ending", " made the whole audience cheer.", " fell flat."),
        ("My friends said", " it was a delight.", " it was a waste of an evening."),
        ("The second act", " is a joy.", " drags on and on without purpose."),
        ("The director", " knows exactly what she wants.", " has no idea what to do."),
    ])
]
