"""The model file: the booster with its column plan, and raw rows scored as the table has them."""
