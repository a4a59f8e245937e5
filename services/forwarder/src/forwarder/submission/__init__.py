"""From a SubmitMessage stream to one Cakemail API call."""
