"""What is done with latents: maps, neighbours, regions and density, the classifier, attention statistics."""
