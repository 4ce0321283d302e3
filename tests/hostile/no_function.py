# no function at all
# layer: static
# expect: no function definition found
losses = 1.0
