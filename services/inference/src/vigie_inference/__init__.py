"""Online fraud scoring with River models that keep learning from delayed labels."""
