export default {
	id: 'greeting',
	handler: (router) => {
		router.get('/', (_req, res) => res.json({ greeting: 'installed from the marketplace' }));
	},
};
